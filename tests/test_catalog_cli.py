"""``termfleet catalog import``, run as a user runs it: a CSV or JSON list into a signed package.

Each success writes one package of kind catalog whose catalog.json is the parsed catalog; each
refusal exits non-zero naming the line (or item) and column of every problem, or the option at
fault, and writes nothing. Uploading and reading through the API are in test_api_catalogs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from control_plane.catalog_import import parse_catalog_csv
from control_plane.cli import cli
from edge.catalog import CATALOG_FILE, decode_catalog
from edge.content.manifest import PackageKind
from edge.content.package import open_package
from edge.content.signing import public_key_text, signing_key_text, trusted_keys
from tests.test_content_repo import KEY

SAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "catalog-sample.csv"
TRUSTED = trusted_keys([public_key_text(KEY.verify_key)])
BAD_CSV = """\
事项编码,事项名称,部门,办理渠道,办结所需外设
RS-0012,社会保险个人参保证明打印,rs,一体机,a4_printer
rs 13,养老保险待遇领取资格认证,rs,一体机,
RS-0040,,rs,传真,打印机
RS-0012,again,rs,窗口,
"""


def run(*args: str | Path) -> Result:
    # Through the whole command, as test_cli_help needs: a sub-group invoked alone breaks it.
    return CliRunner().invoke(cli, ["catalog", *(str(arg) for arg in args)], prog_name="termfleet")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing.key"
    path.parent.mkdir()
    path.write_bytes(signing_key_text(KEY))
    path.chmod(0o600)
    return path


def imported(tmp_path: Path, result: Result, name: str = "conghua", version: int = 1) -> Path:
    assert result.exit_code == 0, result.output
    return tmp_path / "out" / f"{name}-{version}.tfpkg"


def test_the_sample_becomes_a_signed_catalog_package(tmp_path: Path, key_file: Path) -> None:
    result = run("import", SAMPLE, "--name", "conghua", "--version", "3", "--key", key_file,
                 "--out", tmp_path / "out", "--json")  # fmt: skip

    package = imported(tmp_path, result, version=3)
    view = json.loads(result.stdout)
    verified = open_package(package, TRUSTED)
    verified.extract_to(tmp_path / "tree")
    catalog = decode_catalog((tmp_path / "tree" / CATALOG_FILE).read_bytes())
    expected = parse_catalog_csv(
        SAMPLE.read_text(encoding="utf-8"),
        catalog_id="conghua",
        version=3,
        published_at=catalog.published_at,
    )
    assert catalog == expected
    assert catalog.published_at is not None
    assert (verified.manifest.kind, verified.manifest.name, verified.manifest.version) == (
        PackageKind.CATALOG,
        "conghua",
        3,
    )
    assert [entry.path for entry in verified.manifest.files] == [CATALOG_FILE]
    assert view["path"] == str(package)
    assert (view["items"], view["size"]) == (24, package.stat().st_size)
    assert view["key_id"] == verified.key_id
    assert "uploaded" not in view


def test_json_is_read_by_its_suffix_or_by_format(tmp_path: Path, key_file: Path) -> None:
    items = [{"code": "GA-0015", "name": "居民身份证复印件打印", "department": "ga",
              "channels": ["kiosk", "村居站"], "needs": ["a4_printer"]}]  # fmt: skip
    (tmp_path / "items.json").write_text(json.dumps({"items": items}, ensure_ascii=False))
    (tmp_path / "items.txt").write_text(json.dumps(items, ensure_ascii=False))
    out = ("--key", key_file, "--out", tmp_path / "out")

    by_suffix = run("import", tmp_path / "items.json", "--name", "ga", "--version", "1", *out)
    by_option = run("import", tmp_path / "items.txt", "--format", "json", "--name", "ga",
                    "--version", "2", *out)  # fmt: skip
    unknown = run("import", tmp_path / "items.txt", "--name", "ga", "--version", "3", *out)

    for version, result in ((1, by_suffix), (2, by_option)):
        package = imported(tmp_path, result, "ga", version)
        assert result.stdout.startswith(f"wrote {package}: catalog ga version {version}, 1 items")
    assert unknown.exit_code == 2
    assert "is it CSV or JSON?" in unknown.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "ga-1.tfpkg",
        "ga-2.tfpkg",
    ]


def test_every_bad_row_is_named_by_line_and_column_and_nothing_written(
    tmp_path: Path, key_file: Path
) -> None:
    (tmp_path / "bad.csv").write_text(BAD_CSV, encoding="utf-8")
    result = run("import", tmp_path / "bad.csv", "--name", "conghua", "--version", "1",
                 "--key", key_file, "--out", tmp_path / "out")  # fmt: skip

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"Error: {tmp_path / 'bad.csv'}: 5 problems, nothing written:"
    assert lines[1].startswith("line 3: 事项编码: 'rs 13' is not an item code")
    assert lines[2] == "line 4: 事项名称: required, and empty"
    assert lines[3].startswith("line 4: 办理渠道: '传真': not a channel")
    assert lines[4].startswith("line 4: 办结所需外设: '打印机': not a peripheral kind")
    assert lines[5] == "line 5: 事项编码: 'RS-0012' again, first on line 2"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--name", "Conghua!", "--version", "1"], 2, "'Conghua!' is not of the form"),
        (["--name", "c", "--version", "0"], 2, "0 is not in the range x>=1"),
        (["--name", "c", "--version", "1", "--upload", "--server", "http://127.0.0.1:9"], 2,
         "no API token"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_before_anything_is_written(
    tmp_path: Path,
    key_file: Path,
    args: list[str],
    code: int,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TERMFLEET_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    result = run("import", SAMPLE, *args, "--key", key_file, "--out", tmp_path / "out")

    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_no_utf8_text_is_refused(tmp_path: Path, key_file: Path) -> None:
    (tmp_path / "gbk.csv").write_bytes(SAMPLE.read_text(encoding="utf-8").encode("gb18030"))
    result = run("import", tmp_path / "gbk.csv", "--name", "c", "--version", "1",
                 "--key", key_file, "--out", tmp_path / "out")  # fmt: skip
    assert result.exit_code == 1
    assert "not UTF-8 text" in result.stderr
    assert "save it as UTF-8" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_existing_package_is_kept_without_force(tmp_path: Path, key_file: Path) -> None:
    args = ("import", SAMPLE, "--name", "conghua", "--version", "1", "--key", key_file,
            "--out", tmp_path / "out")  # fmt: skip
    package = imported(tmp_path, run(*args))
    before = package.read_bytes()

    again = run(*args)
    forced = run(*args, "--force")

    assert again.exit_code == 1
    assert "exists already; --force replaces it" in again.stderr
    assert forced.exit_code == 0, forced.output
    assert package.read_bytes() != before  # signed anew, at another time


def test_a_private_key_others_may_read_is_refused(tmp_path: Path, key_file: Path) -> None:
    key_file.chmod(0o644)
    result = run("import", SAMPLE, "--name", "c", "--version", "1", "--key", key_file,
                 "--out", tmp_path / "out")  # fmt: skip
    assert result.exit_code == 1
    assert "may be read by others" in result.stderr
    assert not list((tmp_path / "out").glob("*.tfpkg"))
