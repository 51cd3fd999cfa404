"""The fault matrix bench: loading refuses bad rows naming the key, the quick matrix passes
in lock-step, a slow over-voltage delay fails exactly the over-voltage rows, the report is
complete and docs/reaction-times.md is the one a run writes."""

from __future__ import annotations

import math
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import can
import pytest

from canbms.cli import main
from controller.errors import ConfigError
from hil.drivers import RealTime
from hil.matrix import load_matrix, parse_matrix
from hil.rows import bounds
from hil.run_matrix import STALL_S, load, stalled
from hil.timing import Timing, total
from slaves.system import INTERNAL, VEHICLE, SimulatedSystem

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load(None)
ROWS = load_matrix(None, CONFIG.diagnosis)
QUICK = [r for r in ROWS if r.quick]


def _row(**changes: object) -> dict:
    row = {"fault": "slave_silent", "state": "standby", "diagnosis": "slave_timeout"}
    return {"row": [{**row, "reaction": "open", **changes}]}


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"fault": "slave_on_fire"}, "row[0].fault"),
        ({"diagnosis": "slave_timout"}, "row[0].diagnosis"),
        ({"state": "driving"}, "row[0].state"),
        ({"reaction": "explode"}, "row[0].reaction"),
        ({"colour": "red"}, "row[0].colour"),
        ({"level": "warning"}, "row[0].level"),
    ],
)
def test_a_bad_row_is_refused_naming_its_key(changes: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_matrix(_row(**changes), CONFIG.diagnosis)
    assert caught.value.key == key


def test_the_quick_subset_covers_every_diagnosis_of_the_full_matrix() -> None:
    judged = {r.diagnosis for r in ROWS if not r.pending and r.diagnosis != "none"}
    slow = {"temperature_stuck"}  # needs a minute of warming: the full matrix only
    assert judged - slow <= {r.diagnosis for r in QUICK}
    assert len(QUICK) >= 20


def test_bounds_follow_the_configuration() -> None:
    slave = next(r for r in ROWS if r.fault == "slave_silent")
    b = bounds(slave, Timing.of(CONFIG))
    fault = CONFIG.protection.checks["slave_timeout"].levels
    level = max(fault)
    expected = fault[level].threshold + fault[level].set_delay_ms / 1000.0 + CONFIG.cycle_s
    assert total(b.diagnosis) == pytest.approx(expected)
    over = next(r for r in ROWS if r.fault == "overcurrent_discharge")
    ob = bounds(over, Timing.of(CONFIG))  # beyond the break current: the fuse delay too
    assert total(ob.open_command) - total(ob.limits) == pytest.approx(
        CONFIG.contactors.fuse_delay_s
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """One lock-step run of the quick matrix (deterministic), shared: its exit code and
    report directory."""
    out = tmp_path_factory.mktemp("quick") / "report"
    return main(["hil", "--quick", "-o", str(out)]), out


def test_the_quick_matrix_passes_in_lock_step_and_writes_the_report(quick_run) -> None:  # noqa: ANN001
    code, out = quick_run
    assert code == 0
    suite = ET.parse(out / "junit.xml").getroot()
    assert int(suite.get("tests")) == len(QUICK)
    assert suite.get("failures") == "0"
    md = (out / "report.md").read_text(encoding="utf-8")
    table = [line for line in md.splitlines() if line.startswith("| ") and "fault |" not in line]
    assert len(table) == len(QUICK) and all(line.endswith("| pass |") for line in table)
    assert "<table>" in (out / "report.html").read_text(encoding="utf-8")
    assert len(list((out / "plots").glob("*.png"))) == len(QUICK)


def test_a_ten_second_overvoltage_delay_fails_exactly_the_overvoltage_rows(
    tmp_path: Path,
) -> None:
    text = (ROOT / "hil" / "demo.toml").read_text(encoding="utf-8")
    slow = tmp_path / "slow.toml"
    slow.write_text(
        text + "\n[protection.cell_overvoltage.fault]\nthreshold = 4.25\nset_delay_ms = 10000\n"
        "clear_delay_ms = 1000\nhysteresis = 0.02\n",
        encoding="utf-8",
    )
    matrix = tmp_path / "matrix.toml"
    chosen = ("cell_overvoltage", "cell_undervoltage", "slave_silent")
    rows = [r for r in tomllib.loads((ROOT / "hil/matrix/default.toml").read_text())["row"]]
    picked = [r for r in rows if r["fault"] in chosen and r["state"] != "precharge"]
    matrix.write_text(
        "".join("[[row]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in r.items()) for r in picked),
        encoding="utf-8",
    )
    out = tmp_path / "report"
    code = main(["hil", "--matrix", str(matrix), "--controller-config", str(slow), "-o", str(out)])
    assert code == 1
    suite = ET.parse(out / "junit.xml").getroot()
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failed == {
        f"cell_overvoltage@{r['state']}" for r in picked if r["fault"] == "cell_overvoltage"
    }


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return '"' + str(value).replace('"', '\\"') + '"'


def test_the_published_reaction_times_are_those_of_a_run(quick_run) -> None:  # noqa: ANN001
    """docs/reaction-times.md holds a run of the default matrix: every row of the matrix
    in its table, and the quick rows with the times a fresh run measures (lock-step is
    deterministic)."""
    published = (ROOT / "docs" / "reaction-times.md").read_text(encoding="utf-8")
    table = {
        tuple(line.split(" | ")[:2]): line
        for line in published.splitlines()
        if line.startswith("| ") and " | " in line and not line.startswith("| fault")
    }
    assert {(f"| {r.fault}", r.state) for r in ROWS} == set(table)
    fresh = (quick_run[1] / "report.md").read_text(encoding="utf-8")
    for line in fresh.splitlines():
        if line.startswith("| ") and not line.startswith("| fault"):
            assert table[tuple(line.split(" | ")[:2])] == line


def test_a_real_time_row_is_void_when_the_plant_or_its_own_controller_stalled() -> None:
    """Past the contactor driver's command timeout a late plant step voids a row; a pause
    of the controller's ContactorCommand frames does when the bench started it itself."""
    now = [0.0]
    buses = {
        role: can.Bus(interface="virtual", channel=f"stall-{role}", receive_own_messages=True)
        for role in (INTERNAL, VEHICLE)
    }
    driver = RealTime(SimulatedSystem(seed=0), buses, Timing.of(CONFIG), clock=lambda: now[0])
    try:
        for k in range(1, 11):
            now[0] = k * driver.step + (STALL_S / 2 if k == 3 else 0.0)
            driver.advance()
        assert stalled(driver, 0, math.nan, own_controller=True)[0] == ""
        now[0] = 11 * driver.step + STALL_S * 1.5
        driver.advance()
        why, _ = stalled(driver, 0, math.nan, own_controller=False)
        assert why == f"a plant step {STALL_S * 1500:.0f} ms late"
    finally:
        for bus in buses.values():
            bus.shutdown()
    quiet = RealTime(SimulatedSystem(seed=0), {}, Timing.of(CONFIG), clock=lambda: 0.0)
    gap = [0.0, 0.02, 0.04, 0.04 + STALL_S * 1.2, 0.06 + STALL_S * 1.2]
    quiet.record.frames += [(t, "ContactorCommand", {}) for t in gap]
    assert stalled(quiet, 0, math.nan, own_controller=False)[0] == ""
    assert "controller process silent" in stalled(quiet, 0, math.nan, own_controller=True)[0]
