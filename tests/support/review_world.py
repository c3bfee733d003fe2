"""A small 好差评 world: two districts' halls with windows and pads, reviews seeded as rows.

    44 省 → 4401 市 ─┬ 440117 从化 ─ 440117101 街口 (town) ─ 440117101001 (village)
                      └ 440114 花都

Sites: the Conghua district hall (windows W01, W02, W03), the Jiekou town centre (window 01), a
village station (window 01) and the Huadu district hall (window W01); a pad at each window and
one placed nowhere. Reviews are written with the tortoise models, as the ingest and the default
job would store them (the ingest's own tests cover how they get there). ``review_api`` serves the
review routes (``http/reviews.py``) over the database with real tokens.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import test_utils, web

from control_plane import tokens
from control_plane.auth import Role
from control_plane.db import database
from control_plane.db.models import ServiceWindow, Site
from control_plane.db.review_models import ReviewRow
from control_plane.http import reviews
from control_plane.http.auth import auth_middleware
from control_plane.http.errors import error_middleware
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.reviews.scores import DEFAULT_RULE, ScoreRule
from tests.support.tokens import TEST_ACTOR

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 20, 2, tzinfo=UTC)  # 10:00 on 20 March in Beijing
CONGHUA, JIEKOU, VILLAGE, HUADU = "440117", "440117101", "440117101001", "440114"
HALL, TOWN_CENTRE, STATION, HUADU_HALL = "s440117", "s440117101", "s440117101001", "s440114"
WINDOWS = {
    (HALL, "W01"): "pad-w01",
    (HALL, "W02"): "pad-w02",
    (HALL, "W03"): "pad-w03",
    (TOWN_CENTRE, "01"): "pad-town",
    (STATION, "01"): "pad-village",
    (HUADU_HALL, "W01"): "pad-huadu",
}
"""Each window and its review pad."""
LOOSE_PAD = "pad-loose"
"""A pad placed at no site."""
SITE_NAMES = {
    HALL: "从化区政务服务中心",
    TOWN_CENTRE: "街口街便民服务中心",
    STATION: "村居服务站",
    HUADU_HALL: "花都区政务服务中心",
}


def inventory() -> str:
    nodes = [
        ("44", "province", None),
        ("4401", "city", "44"),
        (CONGHUA, "district", "4401"),
        (JIEKOU, "town", CONGHUA),
        (VILLAGE, "village", JIEKOU),
        (HUADU, "district", "4401"),
    ]
    levels = {code: level for code, level, _ in nodes}
    return json.dumps(
        {
            "jurisdiction": [
                {"code": code, "name": f"n{code}", "level": level, "parent": parent}
                for code, level, parent in nodes
            ],
            "departments": [{"code": "rs", "name": "人社"}, {"code": "ga", "name": "公安"}],
            "sites": [
                {"code": site, "name": name, "level": levels[site[1:]], "node": site[1:],
                 "hours": "24/7"}
                for site, name in SITE_NAMES.items()
            ],
            "windows": [{"site": site, "number": number} for site, number in WINDOWS],
            "devices": [
                *({"device_id": pad, "kind": "review_pad", "site": site, "window": number}
                  for (site, number), pad in WINDOWS.items()),
                {"device_id": LOOSE_PAD, "kind": "review_pad"},
            ],
        }
    )  # fmt: skip


async def build_world() -> None:
    await import_inventory(read_json(inventory(), "reviews.json"))


_cases = itertools.count(1)


async def add_review(
    window: tuple[str, str] | None,
    rating: str,
    rated_at: datetime,
    *,
    department: str = "rs",
    source: str = "terminal",
    voided: bool = False,
    case_number: str | None = None,
) -> ReviewRow:
    """A review as the ingest stores it: at the site and window of the pad (None: the loose one)."""
    site_id = window_id = None
    device_id = LOOSE_PAD
    if window is not None:
        site = await Site.get(code=window[0])
        site_id = site.id
        window_id = (await ServiceWindow.get(site_id=site.id, number=window[1])).id
        device_id = WINDOWS[window]
    number = next(_cases)
    return await ReviewRow.create(
        case_number=case_number or f"C{number:05d}",
        source=source,
        device_id="" if source == "default" else device_id,
        seq=None if source == "default" else number,
        rating=rating,
        channel="window_pad",
        department=department,
        window_number=window[1] if window else "",
        site_id=site_id,
        window_id=window_id,
        rated_at=rated_at,
        received_at=rated_at,
        voided_at=rated_at if voided else None,
    )


def march(day: int, hour: int = 10) -> datetime:
    """A moment of March 2026 in Beijing time, as UTC."""
    return datetime(2026, 3, day, hour, tzinfo=SHANGHAI).astimezone(UTC)


W01, W02, W03 = (HALL, "W01"), (HALL, "W02"), (HALL, "W03")
TOWN_WINDOW, VILLAGE_WINDOW, HUADU_W01 = (TOWN_CENTRE, "01"), (STATION, "01"), (HUADU_HALL, "W01")


async def seed_march() -> None:
    """The month the league tables are computed from by hand (tests/test_api_reviews.py)."""
    # W01: 2 非常满意, 1 满意; one of them at 00:30 on 1 March in Beijing (16:30 UTC the day
    # before): March. A 非常不满意 at 00:00 on 1 April and one at 23:59:59 on 28 February (local)
    # lie outside the month.
    await add_review(W01, "very_satisfied", datetime(2026, 2, 28, 16, 30, tzinfo=UTC))
    await add_review(W01, "very_satisfied", march(2))
    await add_review(W01, "satisfied", march(3))
    await add_review(W01, "very_dissatisfied", datetime(2026, 3, 31, 16, tzinfo=UTC))
    await add_review(W01, "very_dissatisfied", datetime(2026, 2, 28, 15, 59, 59, tzinfo=UTC))
    # W02 (公安): 1 each of 非常满意, 满意, 基本满意, 不满意; a voided 非常不满意 (appeal upheld)
    # and an `unknown` rating, neither of which scores.
    for rating in ("very_satisfied", "satisfied", "basic", "dissatisfied"):
        await add_review(W02, rating, march(4), department="ga")
    await add_review(W02, "very_dissatisfied", march(5), department="ga", voided=True)
    await add_review(W02, "unknown", march(5), department="ga")
    # W03: one 非常满意, too few to be ranked.
    await add_review(W03, "very_satisfied", march(6))
    # The town centre: 3 满意 and a case not rated in time (the default 基本满意).
    for day in (7, 8, 9):
        await add_review(TOWN_WINDOW, "satisfied", march(day))
    await add_review(TOWN_WINDOW, "basic", march(10), source="default")
    # The village station (公安): 2 满意, 1 非常不满意.
    await add_review(VILLAGE_WINDOW, "satisfied", march(11), department="ga")
    await add_review(VILLAGE_WINDOW, "satisfied", march(12), department="ga")
    await add_review(VILLAGE_WINDOW, "very_dissatisfied", march(13), department="ga")
    # Huadu, the other district: 3 非常满意.
    for day in (14, 15, 16):
        await add_review(HUADU_W01, "very_satisfied", march(day))
    # The pad placed nowhere, naming no department: 1 非常满意.
    await add_review(None, "very_satisfied", march(17), department="")


# --- the API ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewApi:
    client: test_utils.TestClient[web.Request, web.Application]

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def token(self, role: Role = Role.ADMIN, scope: str | None = None) -> str:
        name = f"{role}-{scope or 'all'}-{uuid.uuid4().hex[:8]}"
        return (await tokens.issue(name, role, actor=TEST_ACTOR, scope_code=scope)).secret

    async def call(
        self,
        method: str,
        path: str,
        secret: str,
        body: Any = None,  # noqa: ANN401 - JSON
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {secret}"}
        response = await self.client.request(method, path, headers=headers, json=body)
        return response.status, (None if response.status == 204 else await response.json())

    async def ok(self, path: str, secret: str) -> Any:  # noqa: ANN401 - JSON
        status, body = await self.call("GET", path, secret)
        assert status == 200, (path, status, body)
        return body

    async def every(self, path: str, secret: str, page: int = 2) -> list[dict[str, Any]]:
        """Every item of a listing, ``page`` at a time, so that paging is checked too."""
        items: list[dict[str, Any]] = []
        separator = "&" if "?" in path else "?"
        cursor = None
        while True:
            query = f"{separator}limit={page}" + (f"&cursor={cursor}" if cursor else "")
            body = await self.ok(path + query, secret)
            assert len(body["items"]) <= page
            items += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                return items


def review_app(clock: Callable[[], datetime], rule: ScoreRule = DEFAULT_RULE) -> web.Application:
    """The review routes alone, behind the API's error and token middlewares, as make_app has them.

    ``rule`` is the server's scoring rule, which make_app does not take.
    """
    app = web.Application(
        middlewares=[error_middleware, auth_middleware(reviews.ROUTES, tokens.authenticate, clock)]
    )
    handlers = reviews.handlers(clock, rule, SHANGHAI)
    for route in reviews.ROUTES:
        app.router.add_route(route.method, route.path, handlers[route.path])
    return app


@contextlib.asynccontextmanager
async def review_api(
    database_url: str,
    *,
    rule: ScoreRule = DEFAULT_RULE,
    clock: Callable[[], datetime] = lambda: NOW,
) -> AsyncIterator[ReviewApi]:
    """The review API on the world above, with the database open (tokens live there)."""
    async with database(database_url):
        await build_world()
        async with test_utils.TestClient(test_utils.TestServer(review_app(clock, rule))) as client:
            yield ReviewApi(client)
