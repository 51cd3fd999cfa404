"""``canbms demo`` end to end in virtual time, and ``canbms run`` as a process.

The session is the demo's own plant, configuration and scenario machinery, compressed in
time (a shorter contactor lock-out) so that discharge, charge into the top-of-charge taper
and an injected fault fit into about ten virtual seconds.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from controller.adapters.base import Level
from controller.config.loader import merged, parse_config
from controller.core import Controller, StepResult
from controller.protection import Check
from hil.scenarios.session import FAULT_MODULE, Action, DemoSession
from slaves.ems import EmsCommand, EmsRequest
from slaves.faults import ModuleSilent

LOCKOUT_S = 1.0
FAULT_AT = 9.0


def _request(request: EmsRequest, reset: bool = False):  # noqa: ANN202
    def apply(system, load) -> None:  # noqa: ANN001
        system.ems.script = (EmsCommand(system.t, request, reset),)

    return apply


def _demand(amps: float):  # noqa: ANN202
    def apply(system, load) -> None:  # noqa: ANN001
        load.demand = amps

    return apply


def _silence(system, load) -> None:  # noqa: ANN001
    system.faults.inject(ModuleSilent(FAULT_MODULE))


ACTIONS = [
    Action(0.0, "standby with fault reset", _request(EmsRequest.STANDBY, True)),
    Action(0.5, "discharge", _request(EmsRequest.DISCHARGE)),
    Action(1.0, "inverter draws up to 150 A", _demand(150.0)),
    Action(4.0, "inverter stops", _demand(0.0)),
    Action(4.5, "standby", _request(EmsRequest.STANDBY)),
    Action(5.0, "charge", _request(EmsRequest.CHARGE)),
    Action(5.5, "charger pushes up to 150 A", _demand(-150.0)),
    Action(FAULT_AT, "slave module falls silent", _silence, True),
]


@pytest.fixture(scope="module")
def session() -> tuple[Controller, DemoSession, list[tuple[float, StepResult]]]:
    text = resources.files("hil").joinpath("demo.toml").read_text(encoding="utf-8")
    data = merged(tomllib.loads(text), {"contactors": {"lockout_s": LOCKOUT_S}})
    controller = Controller(parse_config(data))
    steps: list[tuple[float, StepResult]] = []
    with DemoSession(seed=1, controller=controller, actions=ACTIONS) as run:
        while run.bench.now < FAULT_AT + 1.5 - 1e-9:
            result = run.step()
            steps.append((run.bench.now, result))
    return controller, run, steps


def _in_force(times: np.ndarray, limit: np.ndarray, window: float) -> np.ndarray:
    """Per step, the largest limit published within ``window`` before it (inclusive)."""
    start = np.searchsorted(times, times - window - 1e-9)
    return np.array([limit[s : i + 1].max() for i, s in enumerate(start)])


def test_current_stays_within_the_published_limits(session) -> None:  # noqa: ANN001
    controller, run, steps = session
    assert run.milestones.closed_discharge is not None
    assert run.milestones.closed_charge is not None
    t = np.array([s for s, _ in steps])
    current = np.array([r.view.current.value for _, r in steps])
    ccl = np.array([r.state.published.ccl for _, r in steps])
    dcl = np.array([r.state.published.dcl for _, r in steps])
    # precharge inrush flows through the resistor, not the load: judged elsewhere
    # the load follows BMS_Limits as received: one frame period old at most, plus the
    # sensor's own period and a cycle until the reading reaches the controller
    periods = controller.status.periods
    window = periods["BMS_Limits"] + 0.02 + controller.config.cycle_s
    tolerance = 0.1  # BMS_Limits resolution
    load = np.array([r.state.contactors.state.name != "PRECHARGE" for _, r in steps])
    assert np.all(-current[load] <= _in_force(t, dcl, window)[load] + tolerance)
    assert np.all(current[load] <= _in_force(t, ccl, window)[load] + tolerance)
    demanding = (t > 1.2) & (t < 4.0)
    bound = demanding & (-current > 10.0) & (-current >= dcl - 2.0)
    assert bound.any(), "the DCL never limited the load: the check above proves nothing"


def test_charge_limit_tapers_near_full_charge(session) -> None:  # noqa: ANN001
    controller, run, steps = session
    charging = [r for _, r in steps if r.state.contactors.state.name == "CLOSED_CHARGE"]
    assert charging
    top = charging[-1].state.published
    assert 0 < top.ccl < controller.config.limits.max_charge_current_a
    assert top.charge_limited_by in ("cell_voltage", "soc", "temperature")
    assert run.milestones.ccl_at_top < run.milestones.ccl_before_taper


def test_injected_fault_opens_the_contactors_in_time(session) -> None:  # noqa: ANN001
    controller, run, steps = session
    m = run.milestones
    cfg = controller.config
    slave = cfg.protection.checks[Check.SLAVE_TIMEOUT].levels[Level.FAULT]
    frame_period = 0.1  # ModuleStatus / CellVoltages period of the slaves
    assert slave.threshold is not None
    reaction = slave.threshold + slave.set_delay_ms / 1000
    assert m.fault_injected is not None and m.fault_detected is not None
    detected = m.fault_detected - m.fault_injected
    assert reaction - frame_period - 1e-6 <= detected <= reaction + cfg.cycle_s + 1e-6
    at_fault = next(r for t, r in steps if t >= m.fault_detected - 1e-9)
    breakable = abs(at_fault.view.current.value) <= cfg.contactors.break_current_a
    allowed = 0.0 if breakable else cfg.contactors.fuse_delay_s
    assert m.contactors_open is not None
    assert m.contactors_open - m.fault_detected <= allowed + cfg.cycle_s + 1e-6
    last = steps[-1][1]
    assert last.state.published.ccl == 0 and last.state.published.dcl == 0


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = "from canbms.cli import main; raise SystemExit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_canbms_run_default_config_exits_cleanly() -> None:
    done = _cli("run", "--duration", "1")
    assert done.returncode == 0, done.stderr
    assert "stopped after" in done.stdout


def test_canbms_run_rejects_a_broken_config_naming_the_key(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[protection.cell_overvoltage.fault]\nthreshold = "high"\n')
    done = _cli("run", "--config", str(broken))
    assert done.returncode != 0
    assert "protection.cell_overvoltage.fault.threshold" in done.stderr
