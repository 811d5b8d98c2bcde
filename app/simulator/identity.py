"""The simulator's fixed demo identity: the credentials and ids it accepts, documented in one place.

The app (demo mode, end-to-end tests) configures itself with these values; the simulator accepts
nothing else, so a test that sends the wrong token or site id fails the way it would in production."""
from __future__ import annotations

# Amber: one account with an active 30-minute site (the fixture scenario) and a closed one.
AMBER_TOKEN = "psk_5131a7e0d3b24f1c9a8e6b2d4c7f0e19"  # psk_ + 32 hex, 36 chars like a real key
AMBER_SITE_ID = "01JCX8Q4V6M2R9T3ZKD5HB7WNE"
AMBER_CLOSED_SITE_ID = "01F5A5CRKMZ5BCX9P1S4V990AM"
AMBER_NMI = "4102365417"
AMBER_NETWORK = "Ausgrid"
AMBER_STATE = "nsw"

# Tesla: one Powerwall site (2 x Powerwall 2). 16 digits, below 2**53, so it survives JSON in a browser.
TESLA_ENERGY_SITE_ID = 2252345678901234
# Site ids TESLA_ENERGY_SITE_ID + 1 ... + EXTRA_SITES - 1 are further Powerwalls on the same account
# (not listed by products: one per simulated household in tests and benchmarks).
EXTRA_SITES = 100_000
TESLA_SPARSE_SITE_ID = 2252345678900007  # a product entry without a battery, as real accounts have
TESLA_VEHICLE_ID = 1234
SITE_TIME_ZONE = "Australia/Sydney"

# Tesla Fleet API app registration (developer.tesla.com) and its OAuth client.
FLEET_CLIENT_ID = "5e1f6c1a-0b7d-4c55-9a1e-sim0000fleet"
FLEET_CLIENT_SECRET = "ta-secret.SIMULATOR-ONLY-not-a-real-secret"
FLEET_REGION = "na"
FLEET_SCOPES = ("openid", "offline_access", "user_data", "energy_device_data", "energy_cmds")

# Pre-issued user tokens so demo mode can start "already connected" without the browser flow.
# The refresh token is single use like Tesla's; POST /_sim/reset issues it afresh.
DEMO_FLEET_ACCESS_TOKEN = "sim-fleet-access-demo"
DEMO_FLEET_REFRESH_TOKEN = "NA_sim0demo0refresh0000000000000000000000000000000000000000000000"

# Teslemetry: a static console token, no OAuth and no refresh.
TESLEMETRY_TOKEN = "sim-teslemetry-0c8d7e6f5a4b3c2d1e0f"


def app_settings(base_url: str) -> dict[str, str]:
    """The app's config values (config.py names) that point it at a simulator served at `base_url`."""
    base = base_url.rstrip("/")
    return {
        "AMBER_API_URL": f"{base}/amber/v1",
        "TESLEMETRY_API_URL": f"{base}/teslemetry",
        "TESLA_FLEET_API_URL": f"{base}/tesla",
        "TESLA_AUTH_URL": base,
        "TESLA_TOKEN_URL": f"{base}/oauth2/v3/token",
        "TESLA_CLIENT_ID": FLEET_CLIENT_ID,
        "TESLA_CLIENT_SECRET": FLEET_CLIENT_SECRET,
    }
