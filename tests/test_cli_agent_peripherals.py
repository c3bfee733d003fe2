"""``termfleet agent peripherals`` and ``agent self-test`` on the simulated bus and on libusb."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from control_plane.cli import cli


def agent_config(tmp_path: Path, kind: str, peripherals: str, extra: str = "") -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'device_id = "t-1"\nkind = "{kind}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'peripherals = "{peripherals}"\n{extra}'
    )
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["agent", *args], catch_exceptions=False)


def test_peripherals_lists_each_with_its_state_model_and_firmware(tmp_path: Path) -> None:
    config = agent_config(tmp_path, "kiosk", "simulated")
    done = run("peripherals", "--config", str(config))
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "STATE", "REASON", "MODEL", "FIRMWARE"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["printer0", "receipt_printer", "ok"],
        ["idreader0", "id_card_reader", "ok"],
        ["camera0", "camera", "ok"],
    ]
    listed = json.loads(run("peripherals", "--config", str(config), "--json").output)
    assert listed[0] == {
        "name": "printer0",
        "kind": "receipt_printer",
        "state": "ok",
        "reason": None,
        "model": "termfleet virtual receipt printer",
        "firmware": listed[0]["firmware"],
    }
    assert listed[0]["firmware"]


def test_self_test_passes_on_working_peripherals(tmp_path: Path) -> None:
    done = run("self-test", "--config", str(agent_config(tmp_path, "review_pad", "simulated")))
    assert (done.exit_code, done.output) == (0, "PASS  keys0.keys\n1 of 1 checks passed\n")


def test_on_libusb_without_the_devices_everything_is_absent_and_self_test_fails(
    tmp_path: Path,
) -> None:
    config = agent_config(
        tmp_path,
        "station_pc",
        "usb",
        '[[usb_peripherals]]\nname = "printer0"\nkind = "receipt_printer"\nids = ["0416:5011"]\n',
    )
    listed = json.loads(run("peripherals", "--config", str(config), "--json").output)
    assert [(p["name"], p["state"], p["reason"]) for p in listed] == [
        ("printer0", "absent", "not_found")
    ]
    done = run("self-test", "--config", str(config), "--json")
    assert done.exit_code == 1
    report = json.loads(done.output)
    assert report["failed"] == ["printer0.test_print"]
    assert report["checks"]["printer0.test_print"].startswith("fail: not_found")


@pytest.mark.parametrize(
    ("peripherals", "extra", "message"),
    [
        ("none", "", 'peripherals = "none"; set "usb"'),
        ("simulated", "[[usb_peripherals]]\nname = 'a4'\nkind = 'a4_printer'\n", "no USB driver"),
        ("simulated", "[[usb_peripherals]]\nname = 'p'\nkind = 'camera'\nids = ['x']\n", "USB id"),
    ],
)
@pytest.mark.parametrize("command", ["peripherals", "self-test"])
def test_a_config_that_cannot_work_is_a_clear_error(
    tmp_path: Path, command: str, peripherals: str, extra: str, message: str
) -> None:
    config = agent_config(tmp_path, "kiosk", peripherals, extra)
    done = run(command, "--config", str(config))
    assert done.exit_code == 1
    assert message in done.output
    assert "Traceback" not in done.output


def test_a_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    done = run("peripherals", "--config", str(tmp_path / "nope.toml"))
    assert done.exit_code == 1
    assert "cannot read agent config" in done.output
