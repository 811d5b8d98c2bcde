"""HTTP clients for the outside services (Amber Electric, Tesla Fleet API / Teslemetry, Tesla OAuth).

Pure: no Flask, no models. Each client takes its base URL, token and `requests.Session` as arguments and
raises the typed errors of `app.clients.errors`.
"""
