"""`termfleet sites import`: CSV, JSON and the demo district; idempotent, all or nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from control_plane import sites
from control_plane.cli import cli
from control_plane.db import database
from control_plane.db.models import (
    Department,
    Device,
    JurisdictionNode,
    ServiceWindow,
    Site,
    WindowDepartment,
)
from control_plane.inventory import InventoryError
from control_plane.inventory_files import read
from control_plane.inventory_set import Inventory
from control_plane.inventory_store import import_inventory
from edge.simulator.district import terminals

CONGHUA = Path(__file__).parent.parent / "edge" / "simulator" / "data" / "conghua.json"

TABLES = {
    "jurisdiction.csv": """code,name,level,parent
44,广东省,province,
4401,广州市,city,44
440117,从化区,district,4401
440117001,街口街,town,440117
""",
    "departments.csv": """code,name
gongan,公安分局
renshe,人社局
""",
    "sites.csv": """code,name,level,node,hours,address,holidays
440117000,从化区政务服务中心,district,440117,"mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00",\
河滨北路,2025-10-01..2025-10-07 closed; 2025-09-28 08:30-12:00
440117001,街口街服务中心,town,440117001,mon-fri 08:30-17:30,,
""",
    "windows.csv": """site,number,name,departments
440117000,01,综合窗口,"gongan,renshe"
440117000,02,,renshe
440117001,01,,
""",
    "devices.csv": """device_id,kind,serial,site,window,labels
kiosk-440117000-01,kiosk,SN-001,440117000,,"vendor=inspur,floor=1"
pad-440117000-01,review_pad,SN-002,440117000,01,
station-x,station_pc,,,,
""",
}
CREATED = {
    "jurisdiction": 4,
    "departments": 2,
    "sites": 2,
    "windows": 3,
    "devices": 3,
}


def write(folder: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def read_all(paths: list[Path]) -> Inventory:
    inventory = Inventory()
    for path in paths:
        inventory.extend(read(path))
    return inventory


def counts(summary: dict[str, dict[str, int]], key: str) -> dict[str, int]:
    return {table: row[key] for table, row in summary.items()}


def as_json_document(folder: Path) -> Path:
    """The same tables as TABLES, as one JSON document."""
    document = {
        "note": "the CSV tables of this test, as JSON",
        "jurisdiction": [
            {"code": "44", "name": "广东省", "level": "province", "parent": None},
            {"code": "4401", "name": "广州市", "level": "city", "parent": "44"},
            {"code": "440117", "name": "从化区", "level": "district", "parent": "4401"},
            {"code": "440117001", "name": "街口街", "level": "town", "parent": "440117"},
        ],
        "departments": [
            {"code": "gongan", "name": "公安分局"},
            {"code": "renshe", "name": "人社局"},
        ],
        "sites": [
            {
                "code": "440117000",
                "name": "从化区政务服务中心",
                "level": "district",
                "node": "440117",
                "hours": "mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00",
                "address": "河滨北路",
                "holidays": {"2025-10-01..2025-10-07": "closed", "2025-09-28": "08:30-12:00"},
            },
            {
                "code": "440117001",
                "name": "街口街服务中心",
                "level": "town",
                "node": "440117001",
                "hours": "mon-fri 08:30-17:30",
                "address": "",
                "holidays": {},
            },
        ],
        "windows": [
            {
                "site": "440117000",
                "number": "01",
                "name": "综合窗口",
                "departments": ["gongan", "renshe"],
            },
            {"site": "440117000", "number": "02", "name": "", "departments": ["renshe"]},
            {"site": "440117001", "number": "01", "name": "", "departments": []},
        ],
        "devices": [
            {
                "device_id": "kiosk-440117000-01",
                "kind": "kiosk",
                "serial": "SN-001",
                "site": "440117000",
                "window": "",
                "labels": {"vendor": "inspur", "floor": "1"},
            },
            {
                "device_id": "pad-440117000-01",
                "kind": "review_pad",
                "serial": "SN-002",
                "site": "440117000",
                "window": "01",
                "labels": {},
            },
            {
                "device_id": "station-x",
                "kind": "station_pc",
                "serial": "",
                "site": "",
                "labels": {},
            },
        ],
    }
    path = folder / "inventory.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# --- a good import ---------------------------------------------------------------------------


async def test_csv_tables_import_and_a_second_import_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    paths = write(tmp_path, TABLES)
    async with database(database_url):
        first = (await import_inventory(read_all(paths))).to_dict()
        second = (await import_inventory(read_all(paths))).to_dict()

        assert counts(first, "created") == CREATED
        assert counts(second, "unchanged") == CREATED
        assert counts(second, "created") == dict.fromkeys(CREATED, 0)
        assert counts(second, "updated") == dict.fromkeys(CREATED, 0)

        hall = await Site.get(code="440117000").prefetch_related("node")
        assert (hall.name, hall.level, hall.node.code, hall.address) == (
            "从化区政务服务中心",
            "district",
            "440117",
            "河滨北路",
        )
        assert hall.holidays["2025-10-03"] == "closed"
        assert hall.holidays["2025-09-28"] == "08:30-12:00"
        assert len(hall.holidays) == 8
        hours = sites.opening_hours(hall)
        assert hours.is_open(datetime(2025, 9, 29, 2, 0, tzinfo=UTC))  # Mon 10:00 in Conghua
        assert not hours.is_open(datetime(2025, 10, 1, 2, 0, tzinfo=UTC))  # National Day
        assert hours.is_open(datetime(2025, 9, 28, 2, 0, tzinfo=UTC))  # a make-up Sunday

        window = await ServiceWindow.get(site_id=hall.id, number="01")
        served = await WindowDepartment.filter(window_id=window.id).prefetch_related("department")
        assert window.name == "综合窗口"
        assert sorted(row.department.code for row in served) == ["gongan", "renshe"]

        kiosk = await Device.get(device_id="kiosk-440117000-01")
        pad = await Device.get(device_id="pad-440117000-01")
        station = await Device.get(device_id="station-x")
        assert (kiosk.kind, kiosk.serial, kiosk.site_id, kiosk.window_id) == (
            "kiosk",
            "SN-001",
            hall.id,
            None,
        )
        assert kiosk.labels == {"floor": "1", "vendor": "inspur"}
        assert kiosk.lifecycle == "registered"
        assert (pad.site_id, pad.window_id) == (hall.id, window.id)
        assert (station.site_id, station.serial) == (None, "")

        node = await JurisdictionNode.get(code="440117001")
        assert node.path == "/44/4401/440117/440117001/"


async def test_json_and_csv_of_the_same_tables_agree(database_url: str, tmp_path: Path) -> None:
    async with database(database_url):
        from_json = (await import_inventory(read(as_json_document(tmp_path)))).to_dict()
        from_csv = (await import_inventory(read_all(write(tmp_path, TABLES)))).to_dict()

    assert counts(from_json, "created") == CREATED
    assert counts(from_csv, "unchanged") == CREATED


async def test_changed_rows_are_updated_and_the_rest_left_unchanged(
    database_url: str, tmp_path: Path
) -> None:
    paths = write(tmp_path, TABLES)
    changed = {
        "sites.csv": TABLES["sites.csv"].replace("mon-fri 08:30-17:30", "mon-sat 08:30-17:30"),
        "windows.csv": TABLES["windows.csv"].replace('"gongan,renshe"', "gongan"),
        "devices.csv": TABLES["devices.csv"].replace("SN-002,440117000,01", "SN-002,440117000,02"),
    }
    async with database(database_url):
        await import_inventory(read_all(paths))
        summary = (await import_inventory(read_all(write(tmp_path, changed)))).to_dict()
        town = await Site.get(code="440117001")
        pad = await Device.get(device_id="pad-440117000-01").prefetch_related("window")
        served = await WindowDepartment.filter(window__number="01", window__site__code="440117000")

    assert summary["sites"] == {"created": 0, "updated": 1, "unchanged": 1}
    assert summary["windows"] == {"created": 0, "updated": 1, "unchanged": 2}
    assert summary["devices"] == {"created": 0, "updated": 1, "unchanged": 2}
    assert town.hours == "mon-sat 08:30-17:30"
    assert pad.window is not None
    assert pad.window.number == "02"
    assert len(served) == 1


async def test_fields_a_file_lacks_are_left_alone(database_url: str, tmp_path: Path) -> None:
    slim = {
        "sites.csv": "code,name,level,node,hours\n"
        "440117000,从化区政务服务中心,district,440117,mon-fri 09:00-17:00\n",
        "devices.csv": "device_id,kind\nkiosk-440117000-01,kiosk\n",
    }
    async with database(database_url):
        await import_inventory(read_all(write(tmp_path, TABLES)))
        summary = (await import_inventory(read_all(write(tmp_path / "..", slim)))).to_dict()
        hall = await Site.get(code="440117000")
        kiosk = await Device.get(device_id="kiosk-440117000-01")

    assert summary["sites"]["updated"] == 1
    assert summary["devices"]["unchanged"] == 1
    assert (hall.hours, hall.address, len(hall.holidays)) == ("mon-fri 09:00-17:00", "河滨北路", 8)
    assert (kiosk.serial, kiosk.site_id is not None, kiosk.labels["vendor"]) == (
        "SN-001",
        True,
        "inspur",
    )


async def test_the_demo_district_imports_as_it_is_with_the_simulators_terminals(
    database_url: str,
) -> None:
    async with database(database_url):
        first = (await import_inventory(read(CONGHUA))).to_dict()
        second = (await import_inventory(read(CONGHUA))).to_dict()
        devices = await Device.all().prefetch_related("site", "window")
        village = await Site.get(code="440117001001").prefetch_related("node")

    simulated = {(t.device_id, t.kind.value, t.site_code, t.window) for t in terminals("conghua")}
    imported = {
        (d.device_id, d.kind, d.site.code if d.site else "", d.window.number if d.window else "")
        for d in devices
    }
    assert imported == simulated
    assert counts(first, "created") == {
        "jurisdiction": 11,
        "departments": 0,
        "sites": 33,
        "windows": 112,
        "devices": len(simulated),
    }
    assert counts(second, "created") == dict.fromkeys(CREATED, 0)
    assert counts(second, "updated") == dict.fromkeys(CREATED, 0)
    # Village stations hang off their town: the dataset has no village nodes.
    assert (village.level, village.node.code) == ("village", "440117001")


async def test_a_dry_run_counts_and_writes_nothing(database_url: str, tmp_path: Path) -> None:
    async with database(database_url):
        summary = await import_inventory(read_all(write(tmp_path, TABLES)), dry_run=True)
        left = [await model.all().count() for model in (JurisdictionNode, Site, Device)]

    assert counts(summary.to_dict(), "created") == CREATED
    assert left == [0, 0, 0]


# --- malformed files -------------------------------------------------------------------------


def refusal(tmp_path: Path, name: str, text: str) -> str:
    with pytest.raises(InventoryError) as refused:
        read_all(write(tmp_path, {name: text})).check()
    return str(refused.value)


def replace_line(table: str, line: int, text: str) -> str:
    lines = TABLES[table].splitlines()
    lines[line - 1] = text
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "jurisdiction.csv",
            replace_line("jurisdiction.csv", 3, "44O1,广州市,city,44"),
            "jurisdiction.csv line 3: code: '44O1' is not a 行政区划 code (2 to 12 digits)",
        ),
        (
            "jurisdiction.csv",
            replace_line("jurisdiction.csv", 4, "440117,从化区,county,4401"),
            (
                "jurisdiction.csv line 4: level: 'county' is not a level (province, city, district,"
                " town, village)"
            ),
        ),
        (
            "jurisdiction.csv",
            "code,name,level\n44,广东省,province\n",
            (
                "jurisdiction.csv line 1: which table? the header needs a column"
                " device_id (devices), number (windows), node (sites), parent (jurisdiction),"
                " or only code,name (departments)"
            ),
        ),
        (
            "sites.csv",
            replace_line(
                "sites.csv", 3, "440117001,街口街服务中心,town,440117001,mon-fri 8:30-17:30,,"
            ),
            "sites.csv line 3: hours: '8:30-17:30' is not HH:MM-HH:MM",
        ),
        (
            "sites.csv",
            replace_line(
                "sites.csv", 3, "440117001,街口街服务中心,town,440117001,weekdays 08:30-17:30,,"
            ),
            "sites.csv line 3: hours: 'weekdays' is not a day (mon … sun)",
        ),
        (
            "sites.csv",
            replace_line(
                "sites.csv", 3, "440117001,街口,town,440117001,mon-fri 08:30-17:30,,2025-10-01 shut"
            ),
            "sites.csv line 3: holidays: 2025-10-01: 'shut' is not HH:MM-HH:MM",
        ),
        (
            "sites.csv",
            replace_line("sites.csv", 3, "440117001,街口街服务中心,town,440117001,,,"),
            "sites.csv line 3: hours: missing",
        ),
        (
            "sites.csv",
            TABLES["sites.csv"] + "440117001,again,town,440117001,mon-fri 08:30-17:30,,\n",
            "sites.csv line 4: duplicate site 440117001 (first at sites.csv line 3)",
        ),
        (
            "windows.csv",
            TABLES["windows.csv"] + "440117000,02,,\n",
            "windows.csv line 5: duplicate window 440117000/02 (first at windows.csv line 3)",
        ),
        (
            "jurisdiction.csv",
            TABLES["jurisdiction.csv"] + "4401,广州市,city,44\n",
            "jurisdiction.csv line 6: duplicate node 4401 (first at jurisdiction.csv line 3)",
        ),
        (
            "jurisdiction.csv",
            "code,name,level,parent\n4401,a,city,440117\n440117,b,district,4401\n",
            (
                "jurisdiction.csv line 2: parent: parent 440117 makes a cycle:"
                " a node cannot be below itself"
            ),
        ),
        (
            "devices.csv",
            "device_id,kind\nkiosk-1,printer\n",
            (
                "devices.csv line 2: kind: 'printer' is not one of"
                " kiosk, review_pad, station_pc, booth"
            ),
        ),
        (
            "devices.csv",
            "device_id,kind,window\npad-1,review_pad,01\n",
            "devices.csv line 2: window: a window needs the site it is at",
        ),
        (
            "devices.csv",
            "device_id,kind,labels\nkiosk-1,kiosk,Vendor=x\n",
            "devices.csv line 2: labels: 'Vendor' is not a label key (lower case, digits, ._/-)",
        ),
        (
            "devices.csv",
            "device_id,kind\ntermfleet-kiosk-7,kiosk\n",
            (
                "devices.csv line 2: device_id: 'termfleet-kiosk-7' starts with 'termfleet-',"
                " which is reserved for termfleet's own broker logins"
            ),
        ),
        (
            "devices.csv",
            "device_id,kind,colour\nkiosk-1,kiosk,red\n",
            (
                "devices.csv line 2: unknown field(s) colour; devices has device_id, kind, serial,"
                " site, window, labels"
            ),
        ),
        (
            "departments.csv",
            "code,name\ngongan,公安,extra\n",
            "departments.csv line 2: more cells than the 2 columns",
        ),
        (
            "departments.csv",
            "code,name\ngongan," + "公" * 129 + "\n",
            "departments.csv line 2: name: longer than 128 characters",
        ),
    ],
    ids=[
        "bad-code",
        "bad-level",
        "no-table",
        "bad-hours",
        "bad-day",
        "bad-holiday",
        "no-hours",
        "duplicate-site",
        "duplicate-window",
        "duplicate-node",
        "cycle",
        "bad-kind",
        "window-without-site",
        "bad-label",
        "reserved-device-id",
        "unknown-column",
        "extra-cell",
        "long-name",
    ],
)
def test_a_malformed_csv_is_refused_naming_the_line_and_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    assert refusal(tmp_path, name, text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"sites": [}', "inventory.json line 1: not JSON: Expecting value"),
        ("[]", "inventory.json: must be a JSON object of tables"),
        (
            '{"site": []}',
            (
                "inventory.json: unknown key(s) site; expected departments, devices, jurisdiction,"
                " note, sites, windows"
            ),
        ),
        (
            '{"jurisdiction": [{"code": 44, "name": "x", "level": "province", "parent": null}]}',
            "inventory.json jurisdiction[0]: code: must be text, not int 44",
        ),
        (
            '{"jurisdiction": [{"code": "44", "name": "x", "level": "province"}]}',
            "inventory.json jurisdiction[0] (44): parent: missing (leave it empty for the root)",
        ),
        (
            '{"windows": [{"site": "s1", "number": "01", "departments": "gongan;renshe"}]}',
            "inventory.json windows[0]: departments: 'gongan;renshe' is not a code",
        ),
    ],
    ids=["not-json", "not-an-object", "unknown-key", "number-code", "no-parent", "bad-departments"],
)
def test_a_malformed_json_file_is_refused_naming_the_row_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    assert refusal(tmp_path, "inventory.json", text).startswith(message)


def test_a_demo_district_with_an_unknown_terminal_kind_is_refused(tmp_path: Path) -> None:
    district = json.loads(CONGHUA.read_text(encoding="utf-8"))
    district["sites"][2]["terminals"] = {"printer": 1}

    message = refusal(tmp_path, "district.json", json.dumps(district))

    assert message == (
        "district.json sites[2] (440117001001): terminals: 'printer': 1 is not a kind → count"
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"jurisdiction.csv": "code,name,level,parent\n440117,从化区,district,4499\n"},
            (
                "jurisdiction.csv line 2: parent: unknown parent 4499:"
                " neither in this import nor in the database"
            ),
        ),
        (
            {
                "jurisdiction.csv": TABLES["jurisdiction.csv"]
                + "440117001001,东风村,town,440117001\n"
            },
            "jurisdiction.csv line 6: level: a town cannot be below a town",
        ),
        (
            {
                **TABLES,
                "sites.csv": TABLES["sites.csv"] + "s9,x,city,440117001,24/7,,\n",
            },
            "sites.csv line 4: level: a city site cannot hang off the town 440117001",
        ),
        (
            {**TABLES, "sites.csv": TABLES["sites.csv"] + "s9,x,town,440199,24/7,,\n"},
            (
                "sites.csv line 4: node: unknown node 440199: neither in this import nor in the"
                " database"
            ),
        ),
        (
            {**TABLES, "windows.csv": TABLES["windows.csv"] + "440117001,02,,minzheng\n"},
            "windows.csv line 5: departments: unknown department(s) minzheng",
        ),
        (
            {**TABLES, "devices.csv": TABLES["devices.csv"] + "pad-9,review_pad,,440117001,07,\n"},
            "devices.csv line 5: window: site 440117001 has no window 07",
        ),
    ],
    ids=[
        "unknown-parent",
        "level-not-below",
        "site-above-node",
        "unknown-node",
        "unknown-department",
        "unknown-window",
    ],
)
async def test_rows_that_do_not_fit_the_database_are_refused_and_nothing_is_imported(
    database_url: str, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    async with database(database_url):
        with pytest.raises(InventoryError) as refused:
            await import_inventory(read_all(write(tmp_path, files)))
        left = [
            await model.all().count()
            for model in (JurisdictionNode, Department, Site, ServiceWindow, Device)
        ]

    assert str(refused.value) == message
    assert left == [0, 0, 0, 0, 0]


async def test_a_failed_import_leaves_an_earlier_import_as_it_was(
    database_url: str, tmp_path: Path
) -> None:
    bad = {
        "sites.csv": TABLES["sites.csv"].replace("河滨北路", "新地址") + "s9,x,town,440199,24/7,,\n"
    }
    async with database(database_url):
        await import_inventory(read_all(write(tmp_path, TABLES)))
        with pytest.raises(InventoryError, match="unknown node 440199"):
            await import_inventory(read_all(write(tmp_path / "..", bad)))
        hall = await Site.get(code="440117000")

    assert hall.address == "河滨北路"


# --- the command -----------------------------------------------------------------------------


def test_sites_import_prints_a_summary_and_json_for_scripts(
    database_url: str, tmp_path: Path
) -> None:
    paths = [str(p) for p in write(tmp_path, TABLES)]
    runner = CliRunner()

    first = runner.invoke(cli, ["sites", "import", *paths, "--database-url", database_url])
    again = runner.invoke(
        cli, ["sites", "import", *paths, "--json", "--database-url", database_url]
    )

    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "TABLE         CREATED  UPDATED  UNCHANGED",
        "jurisdiction  4        0        0",
        "departments   2        0        0",
        "sites         2        0        0",
        "windows       3        0        0",
        "devices       3        0        0",
    ]
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["dry_run"] is False
    assert report["tables"]["sites"] == {"created": 0, "updated": 0, "unchanged": 2}


def test_sites_import_of_a_bad_file_exits_non_zero_naming_the_row(
    database_url: str, tmp_path: Path
) -> None:
    files = {**TABLES, "sites.csv": TABLES["sites.csv"].replace("mon-fri 08:30-17:30", "9-5")}
    paths = [str(p) for p in write(tmp_path, files)]

    result = CliRunner().invoke(cli, ["sites", "import", *paths, "--database-url", database_url])

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: sites.csv line 3: hours: '9-5' has no hours (expected e.g. 'mon-fri 08:30-17:30')\n"
    )
    assert "Traceback" not in result.output


def test_sites_import_dry_run_says_so(sqlite_url: str) -> None:
    result = CliRunner().invoke(
        cli, ["sites", "import", str(CONGHUA), "--dry-run", "--database-url", sqlite_url]
    )

    assert result.exit_code == 0, result.output
    assert "sites         33       0        0" in result.stdout
    assert result.stderr == "dry run: nothing was written\n"


def test_sites_import_of_a_missing_file_says_so(tmp_path: Path, sqlite_url: str) -> None:
    result = CliRunner().invoke(
        cli, ["sites", "import", str(tmp_path / "nope.csv"), "--database-url", sqlite_url]
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: nope.csv: cannot read: ")


# --- docs/site-import.md ---------------------------------------------------------------------

DOC = Path(__file__).parent.parent / "docs" / "site-import.md"


def doc_blocks(language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return [block.split("\n```", 1)[0] + "\n" for block in text.split(f"```{language}\n")[1:]]


async def test_the_examples_of_the_import_page_import(sqlite_url: str, tmp_path: Path) -> None:
    csv_files = {f"example{n}.csv": block for n, block in enumerate(doc_blocks("csv"))}
    (json_block,) = doc_blocks("json")
    async with database(sqlite_url):
        from_csv = (await import_inventory(read_all(write(tmp_path, csv_files)))).to_dict()
        from_json = await import_inventory(read(write(tmp_path, {"x.json": json_block})[0]))

    assert len(csv_files) == 5
    assert counts(from_csv, "created") == {
        "jurisdiction": 4,
        "departments": 2,
        "sites": 1,
        "windows": 1,
        "devices": 2,
    }
    assert from_json.to_dict()["sites"] == {"created": 0, "updated": 1, "unchanged": 0}
