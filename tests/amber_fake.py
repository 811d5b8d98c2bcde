"""A scriptable Amber API for sync tests, served through `responses` (Tesla goes to the simulator).

Prices come from a function of the interval start, so a test can change them between ticks."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import responses

NEM = timezone(timedelta(hours=10))
PriceFn = Callable[[datetime, int], tuple[float, float]]  # (start, minutes) -> (general c/kWh, feed-in c/kWh)


def flat(general: float = 30.0, feed_in: float = -8.0) -> PriceFn:
    return lambda start, minutes: (general, feed_in)


class FakeAmber:
    """Answers /sites and /sites/{id}/prices/current like Amber, from `price_fn` and the test clock."""

    def __init__(self, base_url: str, site_id: str, clock: Callable[[], datetime], price_fn: PriceFn | None = None):
        self.base_url = base_url.rstrip("/")
        self.site_id = site_id
        self.clock = clock
        self.price_fn = price_fn or flat()
        self.forecast_slots = 48
        self.estimate_until: datetime | None = None  # the current 5-min price is an estimate before this
        self.fail_status: int | None = None
        self.calls: list[str] = []
        self.remaining = 50

    def install(self, mock: responses.RequestsMock) -> None:
        mock.add_callback(responses.GET, re.compile(re.escape(self.base_url) + r"/sites/[^/]+/prices/current.*"), self._prices)
        mock.add_callback(responses.GET, re.compile(re.escape(self.base_url) + r"/sites(\?.*)?$"), self._sites)

    def _headers(self) -> dict[str, str]:
        self.remaining = max(0, self.remaining - 1)
        return {"RateLimit-Limit": "50", "RateLimit-Remaining": str(self.remaining), "RateLimit-Reset": "120"}

    def _sites(self, request):
        self.calls.append("sites")
        body = [{"id": self.site_id, "nmi": "4102365417", "network": "Ausgrid", "status": "active", "channels": [], "intervalLength": 5}]
        return 200, self._headers(), json.dumps(body)

    def _prices(self, request):
        query = parse_qs(urlsplit(request.url).query)
        resolution = int(query.get("resolution", ["30"])[0])
        previous = int(query.get("previous", ["0"])[0])
        nxt = int(query.get("next", ["0"])[0])
        self.calls.append(f"prices/{resolution}")
        if self.fail_status:
            return self.fail_status, {}, json.dumps({"message": "Internal server error"})
        now = self.clock()
        step = timedelta(minutes=resolution)
        epoch = datetime(2020, 1, 1, tzinfo=timezone.utc)
        current_start = epoch + ((now - epoch) // step) * step
        nxt = min(nxt, self.forecast_slots) if resolution == 30 else nxt
        body = []
        for channel in ("general", "feedIn"):
            for offset in range(-previous, nxt + 1):
                start = current_start + offset * step
                general, feed_in = self.price_fn(start, resolution)
                price = general if channel == "general" else feed_in
                kind = "ActualInterval" if offset < 0 else "CurrentInterval" if offset == 0 else "ForecastInterval"
                end = start + step
                item = {
                    "type": kind, "duration": resolution, "spotPerKwh": price / 1.5, "perKwh": price,
                    "date": (end - timedelta(seconds=1)).astimezone(NEM).date().isoformat(),
                    "nemTime": end.astimezone(NEM).isoformat(), "startTime": (start + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
                    "endTime": end.isoformat().replace("+00:00", "Z"), "renewables": 40.0, "channelType": channel,
                    "spikeStatus": "none", "descriptor": "neutral",
                }
                if kind == "CurrentInterval":
                    item["estimate"] = bool(self.estimate_until and resolution == 5 and now < self.estimate_until)
                if kind == "ForecastInterval":
                    item["advancedPrice"] = {"low": price * 0.9, "predicted": price, "high": price * 1.1}
                body.append(item)
        return 200, self._headers(), json.dumps(body)
