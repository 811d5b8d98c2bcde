"""Notifications: a household's events become messages to each member's Apprise targets.

- `events`: the pure part, which events exist, which problems are open, what starts and what clears.
- `targets`: a person's Apprise URLs (validated by Apprise, stored encrypted, shown only as a label).
- `outbox`: messages keyed per event and target, delivered at least once, retried with backoff.
- `service`: what the sync and force control call; `cli`: `flask notifications …`.

May import the models, the database, crypto and Apprise; the sync and control call it, pages and the
command line ask it. A notification problem never stops a sync or a force session."""
