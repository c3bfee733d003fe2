"""The catalog file format: items and catalogs checked, canonical bytes, round trips, refusals."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.catalog import (
    Catalog,
    CatalogError,
    CatalogErrorReason,
    ServiceChannel,
    ServiceItem,
    decode_catalog,
    encode_catalog,
)
from edge.protocol.health import PeripheralKind

KNOWN_KINDS = [kind for kind in PeripheralKind if kind is not PeripheralKind.UNKNOWN]
KNOWN_CHANNELS = [channel for channel in ServiceChannel if channel is not ServiceChannel.UNKNOWN]
CHINA = timezone(timedelta(hours=8))


def item(code: str = "RS-0012", **changes: object) -> ServiceItem:
    fields: dict[str, object] = {
        "code": code,
        "name": "社会保险个人参保证明打印",
        "department": "rs",
        "category": "社会保障",
        "channels": (ServiceChannel.KIOSK, ServiceChannel.WINDOW),
        "materials": ("居民身份证",),
        "query_needs": (PeripheralKind.ID_CARD_READER,),
        "needs": (PeripheralKind.A4_PRINTER,),
    }
    return ServiceItem(**{**fields, **changes})  # type: ignore[arg-type]


# --- hypothesis strategies, shared with the servable and import tests ----------------------

codes = st.from_regex(r"[0-9A-Z]{1,6}(-[0-9A-Z]{1,6}){0,2}", fullmatch=True)
kinds = st.lists(st.sampled_from(KNOWN_KINDS), max_size=3).map(tuple)
dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


@st.composite
def items(draw: st.DrawFn, code: str | None = None) -> ServiceItem:
    start, end = draw(st.none() | dates), draw(st.none() | dates)
    if start is not None and end is not None and end < start:
        start, end = end, start
    return ServiceItem(
        code=code if code is not None else draw(codes),
        name=draw(st.text(st.characters(categories=("L", "N")), min_size=1, max_size=20)),
        department=draw(st.sampled_from(["rs", "sw", "ga", "gjj", "440117-rsj"])),
        channels=tuple(draw(st.lists(st.sampled_from(KNOWN_CHANNELS), min_size=1, max_size=3))),
        materials=tuple(draw(st.lists(st.sampled_from(["居民身份证", "户口簿"]), max_size=2))),
        needs=draw(kinds),
        query_needs=draw(kinds),
        effective_from=start,
        effective_to=end,
    )


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    unique_codes = draw(st.lists(codes, unique=True, max_size=8))
    return Catalog(
        catalog_id=draw(st.sampled_from(["conghua-kiosk", "jieyang.village_1"])),
        version=draw(st.integers(min_value=1, max_value=2**31)),
        published_at=draw(st.none() | st.just(datetime(2025, 3, 1, 9, 30, tzinfo=CHINA))),
        items=tuple(draw(items(code)) for code in unique_codes),
    )


# --- round trips and canonical bytes --------------------------------------------------------


@given(catalogs())
def test_any_catalog_survives_encode_and_decode(catalog: Catalog) -> None:
    assert decode_catalog(encode_catalog(catalog)) == catalog


@given(catalogs(), st.randoms(use_true_random=False))
def test_item_order_and_repeats_never_change_the_bytes(
    catalog: Catalog, rng: random.Random
) -> None:
    shuffled = list(catalog.items)
    rng.shuffle(shuffled)
    repeated = [
        msgspec.structs.replace(
            one, channels=one.channels * 2, needs=one.needs[::-1], query_needs=one.query_needs * 2
        )
        for one in shuffled
    ]
    again = msgspec.structs.replace(catalog, items=tuple(repeated))
    assert encode_catalog(again) == encode_catalog(catalog)


def test_the_encoding_is_the_documented_canonical_form() -> None:
    catalog = Catalog(
        catalog_id="conghua-kiosk",
        version=3,
        published_at=datetime(2025, 3, 1, 9, 30, tzinfo=CHINA),
        items=(
            item(
                "SW-0105",
                channels=(ServiceChannel.WINDOW, ServiceChannel.KIOSK, ServiceChannel.KIOSK),
                effective_to=date(2025, 12, 31),
            ),
            item("GA-0007", needs=(), materials=()),
        ),
    )
    expected = {
        "v": 1,
        "catalog_id": "conghua-kiosk",
        "version": 3,
        "published_at": "2025-03-01T09:30:00+08:00",
        "items": [
            {
                "code": "GA-0007",
                "name": "社会保险个人参保证明打印",
                "department": "rs",
                "category": "社会保障",
                "channels": ["kiosk", "window"],
                "materials": [],
                "needs": [],
                "query_needs": ["id_card_reader"],
                "effective_from": None,
                "effective_to": None,
            },
            {
                "code": "SW-0105",
                "name": "社会保险个人参保证明打印",
                "department": "rs",
                "category": "社会保障",
                "channels": ["kiosk", "window"],
                "materials": ["居民身份证"],
                "needs": ["a4_printer"],
                "query_needs": ["id_card_reader"],
                "effective_from": None,
                "effective_to": "2025-12-31",
            },
        ],
    }
    encoded = encode_catalog(catalog)
    assert json.loads(encoded) == expected
    # Field order is part of the canonical form: keys appear as listed, no spaces.
    assert encoded == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()


# --- rules of an item -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"code": "rs-0012"}, CatalogErrorReason.BAD_CODE, "code"),
        ({"code": "RS-"}, CatalogErrorReason.BAD_CODE, "code"),
        ({"code": "RS--0012"}, CatalogErrorReason.BAD_CODE, "code"),
        ({"code": ""}, CatalogErrorReason.BAD_CODE, "code"),
        ({"code": "RS 0012"}, CatalogErrorReason.BAD_CODE, "code"),
        ({"code": "RS-0012\n"}, CatalogErrorReason.BAD_CODE, "code"),
        ({"code": "1" * 65}, CatalogErrorReason.BAD_CODE, "code"),
        ({"name": ""}, CatalogErrorReason.BAD_NAME, "name"),
        ({"name": " \t"}, CatalogErrorReason.BAD_NAME, "name"),
        ({"name": "证" * 256}, CatalogErrorReason.BAD_NAME, "name"),
        ({"name": "户籍\r证明"}, CatalogErrorReason.BAD_NAME, "name"),
        ({"department": ""}, CatalogErrorReason.BAD_DEPARTMENT, "department"),
        ({"department": "人社"}, CatalogErrorReason.BAD_DEPARTMENT, "department"),
        ({"category": "社保\n医保"}, CatalogErrorReason.BAD_TEXT, "category"),
        ({"materials": ("身份证", "x" * 256)}, CatalogErrorReason.BAD_TEXT, "materials"),
        ({"channels": ()}, CatalogErrorReason.NO_CHANNEL, "channels"),
        (
            {"effective_from": date(2025, 2, 1), "effective_to": date(2025, 1, 31)},
            CatalogErrorReason.BAD_DATES,
            "effective_to",
        ),
    ],
)
def test_an_item_breaking_a_rule_is_refused_naming_the_field(
    changes: dict[str, Any], reason: CatalogErrorReason, field: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        item(**changes)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    "code", ["RS-0012", "A", "11440117007517457X4440111005000", "SCJG-0044-01", "9" * 64]
)
def test_item_codes_accepted(code: str) -> None:
    assert item(code).code == code


def test_a_one_day_item_is_allowed_and_its_dates_are_inclusive() -> None:
    one_day = item(effective_from=date(2025, 5, 1), effective_to=date(2025, 5, 1))
    assert one_day.effective_on(date(2025, 5, 1))
    assert not one_day.effective_on(date(2025, 4, 30))
    assert not one_day.effective_on(date(2025, 5, 2))
    assert item().effective_on(date(1970, 1, 1))


# --- rules of a catalog ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"items": (item("RS-0012"), item("GA-0007"), item("RS-0012"))}, "duplicate_code", "items"),
        ({"version": 0}, "bad_version", "version"),
        ({"version": -1}, "bad_version", "version"),
        ({"catalog_id": ""}, "bad_catalog_id", "catalog_id"),
        ({"catalog_id": "从化/kiosk"}, "bad_catalog_id", "catalog_id"),
        ({"published_at": datetime(2025, 3, 1, 9, 30)}, "bad_published_at", "published_at"),  # noqa: DTZ001 - the naive time is what is refused
        ({"v": 2}, "unsupported_format", "v"),
    ],
)
def test_a_catalog_breaking_a_rule_is_refused(
    changes: dict[str, object], reason: str, field: str
) -> None:
    fields: dict[str, object] = {"catalog_id": "conghua-kiosk", "version": 1, **changes}
    with pytest.raises(CatalogError) as caught:
        Catalog(**fields)  # type: ignore[arg-type]
    assert (caught.value.reason, caught.value.field) == (reason, field)


def test_items_are_kept_sorted_by_code() -> None:
    catalog = Catalog(catalog_id="c", version=1, items=(item("SW-1"), item("GA-2"), item("RS-3")))
    assert [one.code for one in catalog.items] == ["GA-2", "RS-3", "SW-1"]


# --- decoding what arrives in a package -----------------------------------------------------


def encoded(**changes: object) -> bytes:
    catalog = Catalog(catalog_id="conghua-kiosk", version=2, items=(item(),))
    document = json.loads(encode_catalog(catalog))
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", CatalogErrorReason.MALFORMED),
        (b"[]", CatalogErrorReason.MALFORMED),
        (b'{"v": 1, "catalog_id": "c"}', CatalogErrorReason.MALFORMED),  # no version
        (encoded(surprise=1), CatalogErrorReason.MALFORMED),
        (encoded(v=2, surprise=1), CatalogErrorReason.UNSUPPORTED_FORMAT),
        (encoded(v="1"), CatalogErrorReason.MALFORMED),
        (encoded(version=0), CatalogErrorReason.BAD_VERSION),
        (encoded(published_at="2025-03-01T09:30:00"), CatalogErrorReason.MALFORMED),
        (encoded(items=[{"code": "A"}]), CatalogErrorReason.MALFORMED),
    ],
)
def test_a_file_that_is_no_catalog_is_refused_with_its_reason(
    data: bytes, reason: CatalogErrorReason
) -> None:
    with pytest.raises(CatalogError) as caught:
        decode_catalog(data)
    assert caught.value.reason == reason


def test_a_rule_broken_inside_the_file_keeps_its_reason_and_path() -> None:
    data = json.loads(encoded())
    data["items"] = [data["items"][0], {**data["items"][0], "code": "bad code"}]
    with pytest.raises(CatalogError) as caught:
        decode_catalog(json.dumps(data))
    assert caught.value.reason == CatalogErrorReason.BAD_CODE
    assert "$.items[1]" in str(caught.value)

    data["items"][1]["code"] = data["items"][0]["code"]
    with pytest.raises(CatalogError) as caught:
        decode_catalog(json.dumps(data))
    assert caught.value.reason == CatalogErrorReason.DUPLICATE_CODE


def test_values_from_a_newer_build_read_as_unknown() -> None:
    data = json.loads(encoded())
    data["items"][0]["channels"] = ["kiosk", "hologram"]
    data["items"][0]["needs"] = ["a4_printer", "fingerprint_reader"]
    read = decode_catalog(json.dumps(data)).items[0]
    assert read.channels == (ServiceChannel.KIOSK, ServiceChannel.UNKNOWN)
    assert read.needs == (PeripheralKind.A4_PRINTER, PeripheralKind.UNKNOWN)


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_decode_to_a_catalog_or_a_catalog_error(data: bytes) -> None:
    try:
        catalog = decode_catalog(data)
    except CatalogError as error:
        reason = error.reason
    else:
        assert isinstance(catalog, Catalog)
        return
    assert reason in set(CatalogErrorReason)


def test_published_at_keeps_its_instant() -> None:
    at = datetime(2025, 3, 1, 1, 30, tzinfo=UTC)
    catalog = Catalog(catalog_id="c", version=1, published_at=at)
    assert decode_catalog(encode_catalog(catalog)).published_at == at
