"""The tariff sync: every 5 minutes, each household's Amber prices become a Tesla tariff on its Powerwall.

- `engine`: one household's sync and the tick over all of them (the price feed fetches each Amber site
  once per tick and shares it); it stores prices, pushes and records runs.
- `rules`: the pure decisions (push or not, fallback, export protection, waiting on Tesla).
- `scheduler` and `lease`: the in-process scheduler and the database lease that makes one process lead.
- `claims` and `worker`: on PostgreSQL with SYNC_MODE=claims, worker processes (`python -m app.sync.worker`)
  claim households in batches and share each tick; the leader only opens the interval.

May import the clients, connections, credentials, control, households, models and the pure tariff and
price modules; pages and the command line import it, never the other way round."""
from __future__ import annotations

from app.sync.engine import (  # noqa: F401 - the package's public face
    BuiltTariff,
    DeadlineExceeded,
    PriceFeed,
    SiteFetch,
    SyncResult,
    fetch_site_prices,
    households_to_sync,
    last_accepted_push,
    run_tick,
    store_prices,
    sync_household,
    sync_state,
    unconfirmed_push,
)
