"""Importing a catalog from CSV and JSON: the sample, every refusal with its place, all or none."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.catalog_import import (
    HEADERS,
    MAX_PROBLEMS_IN_MESSAGE,
    CatalogImportError,
    ImportReason,
    Problem,
    parse_catalog_csv,
    parse_catalog_json,
)
from edge.catalog import Catalog, CatalogErrorReason, ServiceChannel, encode_catalog
from edge.protocol.health import PeripheralKind
from tests.test_catalog_items import catalogs

SAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "catalog-sample.csv"
HEADER = "code,name,department,channels,needs,query_needs,effective_from,effective_to"
WIDE_SEMICOLON = "\uff1b"
"""The full-width semicolon Chinese input methods type, a list separator like ``;``."""
GOOD_ROW = "RS-0012,社保参保证明打印,rs,kiosk;window,a4_printer,id_card_reader,2025-01-01,"


def csv(*rows: str, header: str = HEADER) -> Catalog:
    return parse_catalog_csv("\n".join([header, *rows]) + "\n", catalog_id="c", version=1)


def refusal(*rows: str, header: str = HEADER) -> tuple[Problem, ...]:
    with pytest.raises(CatalogImportError) as caught:
        csv(*rows, header=header)
    return caught.value.problems


# --- what imports ---------------------------------------------------------------------------


def test_the_sample_imports_with_its_chinese_headers_and_values() -> None:
    catalog = parse_catalog_csv(
        SAMPLE.read_text(encoding="utf-8"), catalog_id="conghua-kiosk", version=1
    )
    by_code = {one.code: one for one in catalog.items}
    assert len(by_code) == 24
    licence = by_code["SCJG-0044"]
    assert licence.name.startswith("个体工商户设立登记")
    assert licence.channels == (ServiceChannel.KIOSK, ServiceChannel.ONLINE, ServiceChannel.WINDOW)
    assert licence.needs == (PeripheralKind.A4_PRINTER, PeripheralKind.DOCUMENT_CAMERA)
    assert licence.query_needs == (PeripheralKind.ID_CARD_READER,)
    assert licence.materials == ("经营者居民身份证", "经营场所使用证明")
    card = by_code["RS-0060"]
    assert (card.query_needs, card.needs) == (
        (PeripheralKind.CITIZEN_CARD_READER,),
        (PeripheralKind.RECEIPT_PRINTER,),
    )
    campaign = by_code["SW-0140"]
    assert (campaign.effective_from, campaign.effective_to) == (
        date(2024, 9, 1),
        date(2024, 12, 31),
    )
    assert by_code["GA-0030"].channels == (ServiceChannel.WINDOW,)
    # Every code the simulator's kiosks report transactions for is in the sample.
    for code in ("RS-0012", "RS-0031", "SW-0105", "GA-0007", "GJJ-0002", "SCJG-0044", "MZ-0019"):
        assert code in by_code


def test_english_headers_in_any_case_a_bom_and_both_separators() -> None:
    text = (
        "\ufeffCode,NAME,Department,渠道,申请材料\n"
        f"GA-0007,户籍证明,ga,kiosk{WIDE_SEMICOLON}window,身份证; 户口簿{WIDE_SEMICOLON}\n"
    )
    catalog = parse_catalog_csv(text, catalog_id="c", version=4)
    (only,) = catalog.items
    assert only.channels == (ServiceChannel.KIOSK, ServiceChannel.WINDOW)
    assert only.materials == ("身份证", "户口簿")
    assert (only.needs, only.effective_from, catalog.version) == ((), None, 4)


def test_blank_lines_and_empty_trailing_columns_are_ignored() -> None:
    catalog = csv("", GOOD_ROW + ",,", " , , ", header=HEADER + ",,")
    assert [one.code for one in catalog.items] == ["RS-0012"]


def test_published_at_is_the_callers() -> None:
    at = datetime(2025, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))
    catalog = parse_catalog_csv(f"{HEADER}\n{GOOD_ROW}", catalog_id="c", version=1, published_at=at)
    assert catalog.published_at == at


# --- refusals, each with its line and column ------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason", "column"),
    [
        ("rs-0012,n,rs,kiosk,,,,", CatalogErrorReason.BAD_CODE, "code"),
        (",n,rs,kiosk,,,,", ImportReason.EMPTY_FIELD, "code"),
        ("A-1,,rs,kiosk,,,,", ImportReason.EMPTY_FIELD, "name"),
        ("A-1,  ,rs,kiosk,,,,", ImportReason.EMPTY_FIELD, "name"),
        ("A-1,n,人社,kiosk,,,,", CatalogErrorReason.BAD_DEPARTMENT, "department"),
        ("A-1,n,rs,,,,,", ImportReason.EMPTY_FIELD, "channels"),
        (f"A-1,n,rs,{WIDE_SEMICOLON};,,,,", ImportReason.EMPTY_FIELD, "channels"),
        ("A-1,n,rs,kiosk;fax,,,,", ImportReason.UNKNOWN_CHANNEL, "channels"),
        ("A-1,n,rs,unknown,,,,", ImportReason.UNKNOWN_CHANNEL, "channels"),
        ("A-1,n,rs,kiosk,printer,,,", ImportReason.UNKNOWN_PERIPHERAL, "needs"),
        ("A-1,n,rs,kiosk,,unknown,,", ImportReason.UNKNOWN_PERIPHERAL, "query_needs"),
        ("A-1,n,rs,kiosk,,,2025/01/01,", ImportReason.BAD_DATE, "effective_from"),
        ("A-1,n,rs,kiosk,,,20250101,", ImportReason.BAD_DATE, "effective_from"),
        ("A-1,n,rs,kiosk,,,,2025-02-30", ImportReason.BAD_DATE, "effective_to"),
        ("A-1,n,rs,kiosk,,,,\uff12\uff10\uff12\uff15-01-01", ImportReason.BAD_DATE, "effective_to"),
        ("A-1,n,rs,kiosk,,,2025-02-01,2025-01-31", CatalogErrorReason.BAD_DATES, "effective_to"),
        ('A-1,"two\nlines",rs,kiosk,,,,', CatalogErrorReason.BAD_NAME, "name"),
        ("A-1,n,rs,kiosk,,,,,surplus", ImportReason.BAD_ROW, None),
    ],
)
def test_a_bad_field_is_refused_with_its_line_and_column(
    row: str, reason: ImportReason | CatalogErrorReason, column: str | None
) -> None:
    (problem,) = refusal(GOOD_ROW, row)
    assert (problem.reason, problem.line, problem.column) == (reason, 3, column)
    assert str(problem).startswith("line 3: " + (f"{column}: " if column else ""))


def test_a_duplicate_code_names_both_lines() -> None:
    (problem,) = refusal(GOOD_ROW, "GA-0007,n,ga,kiosk,,,,", GOOD_ROW)
    assert (problem.reason, problem.line, problem.column) == ("duplicate_code", 4, "code")
    assert "first on line 2" in problem.message


@pytest.mark.parametrize(
    ("header", "reason", "column"),
    [
        ("code,name,department", ImportReason.MISSING_COLUMN, None),
        (HEADER + ",fee", ImportReason.UNKNOWN_COLUMN, "fee"),
        (HEADER + ",事项编码", ImportReason.DUPLICATE_COLUMN, "事项编码"),
        (HEADER + ",code", ImportReason.DUPLICATE_COLUMN, "code"),
    ],
)
def test_a_bad_header_is_refused_on_line_1(
    header: str, reason: ImportReason, column: str | None
) -> None:
    problems = refusal(GOOD_ROW, header=header)
    assert [(p.reason, p.line, p.column) for p in problems] == [(reason, 1, column)]


@pytest.mark.parametrize("text", ["", "\n\n", ",,,\nA-1,n,rs,kiosk"])
def test_a_file_without_a_header_is_refused(text: str) -> None:
    with pytest.raises(CatalogImportError) as caught:
        parse_catalog_csv(text, catalog_id="c", version=1)
    assert caught.value.reason == ImportReason.NO_HEADER


def test_columns_are_named_as_the_file_names_them() -> None:
    header = "事项编码,事项名称,部门,办理渠道,办结所需外设"
    (problem,) = refusal("A-1,名,rs,一体机,打印机", header=header)
    assert (problem.column, problem.reason) == ("办结所需外设", ImportReason.UNKNOWN_PERIPHERAL)
    assert "'打印机'" in problem.message


def test_every_problem_of_every_row_is_collected_and_nothing_imports() -> None:
    problems = refusal(
        "bad code,,rs,fax,,,2025-13-01,",  # four problems on line 2
        GOOD_ROW,
        '"A-2","multi\nline name",rs,kiosk,,,,',  # lines 4 and 5: reported from line 4
        "A-3,n,rs,kiosk,toaster,,,",
    )
    assert [(p.line, p.column) for p in problems] == [
        (2, "code"),
        (2, "name"),
        (2, "channels"),
        (2, "effective_from"),
        (4, "name"),
        (6, "needs"),
    ]


def test_a_bad_catalog_id_or_version_is_a_problem_too() -> None:
    with pytest.raises(CatalogImportError) as caught:
        parse_catalog_csv(f"{HEADER}\nA-1,n,rs,fax,,,,", catalog_id="a/b", version=0)
    assert [(p.reason, p.column) for p in caught.value.problems] == [
        (CatalogErrorReason.BAD_CATALOG_ID, "catalog_id"),
        (ImportReason.UNKNOWN_CHANNEL, "channels"),
    ]
    with pytest.raises(CatalogImportError) as caught:
        parse_catalog_csv(f"{HEADER}\n{GOOD_ROW}", catalog_id="c", version=0)
    assert caught.value.reason == CatalogErrorReason.BAD_VERSION


def test_the_message_lists_the_first_problems_and_counts_the_rest() -> None:
    rows = [f"A-{n},,rs,kiosk,,,," for n in range(MAX_PROBLEMS_IN_MESSAGE + 5)]
    with pytest.raises(CatalogImportError) as caught:
        csv(*rows)
    lines = str(caught.value).splitlines()
    assert len(caught.value.problems) == MAX_PROBLEMS_IN_MESSAGE + 5
    assert lines[0] == "line 2: name: required, and empty"
    assert lines[-1] == "… and 5 more"


# --- JSON -----------------------------------------------------------------------------------


@given(catalogs())
def test_a_catalogs_items_import_back_from_json(catalog: Catalog) -> None:
    items = json.loads(encode_catalog(catalog))["items"]
    for text in (json.dumps(items), json.dumps({"items": items}, ensure_ascii=False)):
        again = parse_catalog_json(
            text,
            catalog_id=catalog.catalog_id,
            version=catalog.version,
            published_at=catalog.published_at,
        )
        assert again == catalog


def test_json_takes_lists_as_arrays_or_strings_and_chinese_keys() -> None:
    text = json.dumps(
        [
            {
                "事项编码": "A-1",
                "事项名称": "名",
                "部门": "rs",
                "渠道": f"一体机{WIDE_SEMICOLON}窗口",
                "needs": ["高拍仪"],
            }
        ]
    )
    (only,) = parse_catalog_json(text, catalog_id="c", version=1).items
    assert only.channels == (ServiceChannel.KIOSK, ServiceChannel.WINDOW)
    assert only.needs == (PeripheralKind.DOCUMENT_CAMERA,)


@pytest.mark.parametrize(
    ("text", "reason", "item", "column"),
    [
        ('[{"code": "A-1",\n "name": }]', ImportReason.NOT_JSON, None, None),
        ('{"items": [], "version": 2}', ImportReason.NOT_JSON, None, None),
        ('"A-1"', ImportReason.NOT_JSON, None, None),
        ("[[]]", ImportReason.BAD_ROW, 0, None),
        ('[{"code": 12, "name": "n", "department": "rs", "channels": "kiosk"}]',
         ImportReason.NOT_TEXT, 0, "code"),
        ('[{"code": "A-1", "name": "n", "department": "rs", "channels": ["kiosk", 1]}]',
         ImportReason.NOT_TEXT, 0, "channels"),
        ('[{"code": "A-1", "name": "n", "department": "rs", "channels": []}]',
         ImportReason.EMPTY_FIELD, 0, "channels"),
        ('[{"code": "A-1", "name": "n", "department": "rs"}]',
         ImportReason.EMPTY_FIELD, 0, "channels"),
        ('[{"code": "A-1", "name": "n", "department": "rs", "channels": "kiosk", "fee": 0}]',
         ImportReason.UNKNOWN_COLUMN, 0, "fee"),
    ],
)  # fmt: skip
def test_bad_json_is_refused_with_its_item_and_key(
    text: str, reason: ImportReason, item: int | None, column: str | None
) -> None:
    with pytest.raises(CatalogImportError) as caught:
        parse_catalog_json(text, catalog_id="c", version=1)
    (problem,) = caught.value.problems
    assert (problem.reason, problem.item, problem.column) == (reason, item, column)


def test_json_syntax_errors_give_their_line() -> None:
    with pytest.raises(CatalogImportError) as caught:
        parse_catalog_json('[\n{"code": "A-1",\n "name": }]', catalog_id="c", version=1)
    assert caught.value.problems[0].line == 3


def test_json_nested_past_any_limit_is_refused_not_crashed() -> None:
    with pytest.raises(CatalogImportError) as caught:
        parse_catalog_json("[" * 100_000, catalog_id="c", version=1)
    assert caught.value.reason == ImportReason.NOT_JSON


# --- any input: a catalog or CatalogImportError ---------------------------------------------

cells = st.sampled_from(
    ["", "A-1", "A-1", "rs", "kiosk", "一体机;窗口", "a4_printer", "2025-01-01", "2025-13-01",
     '"', '"a,b"', WIDE_SEMICOLON, "\n", "\r", "\x00", "名"]
) | st.text(max_size=8)  # fmt: skip
header_names = st.sampled_from(sorted(HEADERS)) | st.text(max_size=6)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    header = draw(st.lists(header_names, min_size=1, max_size=10))
    rows = draw(st.lists(st.lists(cells, max_size=11), max_size=5))
    lines = [",".join(header), *(",".join(row) for row in rows)]
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)


@given(csv_texts() | st.text(max_size=300))
def test_any_csv_text_gives_a_catalog_or_catalog_import_error(text: str) -> None:
    try:
        catalog = parse_catalog_csv(text, catalog_id="c", version=1)
    except CatalogImportError as error:
        problems = error.problems
    else:
        assert all(one.name.strip() for one in catalog.items)
        return
    assert problems
    assert all(str(problem) for problem in problems)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | cells,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(header_names | st.just("items"), children, max_size=5)
    ),
    max_leaves=20,
)


@given(json_values)
def test_any_json_gives_a_catalog_or_catalog_import_error(value: object) -> None:
    text = msgspec.json.encode(value).decode()
    try:
        catalog = parse_catalog_json(text, catalog_id="c", version=1)
    except CatalogImportError as error:
        problems = error.problems
    else:
        assert isinstance(catalog, Catalog)
        return
    assert problems
