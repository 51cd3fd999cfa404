"""One fault-matrix row from start to verdict, the same script in lock-step and real time.

The script: make the controller ready (standby with a fault reset until it reports standby
without a fault), bring the pack into the row's state through the EMS, let it settle, inject
the fault (and reveal it where it is latent), watch for the row's window, undo the fault.
The window is the largest bound plus `TAIL_S`, so the script never waits on the result it
judges. Then the observations are read from the record (`observe`) and judged (`judge`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from controller.protection import Check
from hil.drivers import Driver
from hil.injections import INJECTIONS
from hil.matrix import Row
from hil.record import ALARM_LEVEL, CHARGER_COMMAND, FAULT_LEVEL, STATE_NAMES
from hil.timing import CHECKS, Term, Timing, formula, total
from slaves.ems import EmsCommand, EmsRequest

READY_S = 30.0  # s to reach standby without a fault (a lock-out of 10 s included)
RESET_HOLD_S = 0.5
STATE_S = 30.0  # s to reach the row's state
TAIL_S = 1.0  # s watched beyond the largest bound
NONE_WINDOW_S = 5.0  # s watched for a row that expects nothing
SETTLE_DEMAND = {"closed_discharge": 40.0, "closed_charge": -20.0}  # A
REQUEST = {
    "standby": EmsRequest.STANDBY,
    "precharge": EmsRequest.DISCHARGE,
    "closed_discharge": EmsRequest.DISCHARGE,
    "closed_charge": EmsRequest.CHARGE,
}
PLAUSIBILITY_BIT = 14
COILS = ("ContactorCmd_MinusClose", "ContactorCmd_PrechargeClose", "ContactorCmd_PlusClose")
CONTACTOR_BITS = {
    "contactor_failed_to_close": 16,
    "contactor_welded": 17,
    "precharge_failed": 18,
    "precharge_overcurrent": 18,
    "contactor_feedback_lost": 19,
}


@dataclass(frozen=True)
class Bounds:
    """The bound of each reaction, as terms (seconds after the onset)."""

    diagnosis: list[Term]
    limits: list[Term]
    open_command: list[Term]
    coils: list[Term]


def bounds(row: Row, timing: Timing, black_box: bool = False) -> Bounds:
    """Black box: the diagnosis is read from BMS_Status, which shows it within one of its
    periods (limits and open command go out in the cycle that decided them)."""
    inj = INJECTIONS[row.fault]
    if row.diagnosis == "none":
        return Bounds([], [], [], [])
    detect = inj.terms(timing, row.diagnosis, row.level)
    if black_box:
        detect = [*detect, timing.period("status")]
    limits = [*detect, Term("frame at the end of the cycle", timing.config.cycle_s)]
    opening = list(limits)
    if inj.current(timing) > timing.break_current:
        opening.append(timing.fuse)
    coils = [*opening, timing.period("command"), Term("driver step", timing.config.cycle_s)]
    return Bounds(detect, limits, opening, coils)


@dataclass
class Outcome:
    """What one row observed, its bounds and its verdict."""

    row: Row
    mode: str
    onset: float = math.nan  # bus time
    diagnosis_at: float | None = None  # s after the onset
    observed: list[str] = field(default_factory=list)
    limits_at: float | None = None
    open_at: float | None = None
    coils_at: float | None = None
    bounds: Bounds | None = None
    failures: list[str] = field(default_factory=list)
    error: str = ""
    duration_s: float = 0.0  # virtual or real seconds the row ran
    stalls: str = ""  # real time: how late the plant and the controller's frames ran
    on_bus: bool = True  # the diagnosis shows on the master frames (black box: else unjudged)
    plot: dict[str, list[float]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.row.pending or (not self.error and not self.failures)

    @property
    def verdict(self) -> str:
        if self.row.pending:
            return "pending"
        return "pass" if self.passed else "FAIL"


def run_row(driver: Driver, row: Row) -> Outcome:
    """Run ``row`` on ``driver``'s plant and controller; the outcome, judged."""
    inj = INJECTIONS[row.fault]
    timing = driver.timing
    black_box = not isinstance(driver, _lockstep_type())
    outcome = Outcome(row, type(driver).__name__, bounds=bounds(row, timing, black_box))
    start = driver.now
    if not _ready(driver):
        reported = driver.record.state
        outcome.error = f"the controller did not reach standby without a fault ({reported})"
        return outcome
    if inj.reveal_on_plus_command:
        inj.apply(driver)  # latent until the plus contactor is commanded
    _request(driver, REQUEST[row.state])
    if not driver.wait(lambda: driver.record.state == row.state, STATE_S):
        outcome.error = (
            f"the pack did not reach {row.state} (the controller reports {driver.record.state})"
        )
        return outcome
    if row.state in SETTLE_DEMAND:
        driver.load.demand = SETTLE_DEMAND[row.state]
        driver.run_for(inj.settle_s)
    elif row.state == "standby":
        driver.run_for(inj.settle_s)
    if inj.reveal_on_plus_command:
        driver.wait(lambda: driver.record.plus_commanded, STATE_S)
    else:
        inj.apply(driver)
        if inj.reveal is not None:
            driver.run_for(inj.reveal_s)
            inj.reveal(driver)
    onset_step = driver.steps + 1 - (1 if inj.reveal_on_plus_command else 0)
    frames_before = len(driver.record.frames)
    events_before = len(driver.record.events)
    coils_before = len(driver.record.coils)
    assert outcome.bounds is not None
    window = total(outcome.bounds.coils) + TAIL_S if outcome.bounds.coils else NONE_WINDOW_S
    driver.run_for(window)
    end = (len(driver.record.frames), len(driver.record.events), len(driver.record.coils))
    inj.clear(driver)
    driver.load.demand, driver.load.ignore_limits = 0.0, False
    _request(driver, EmsRequest.STANDBY)
    driver.run_for(0.2)  # the last echoes arrive
    outcome.onset = driver.step_time(onset_step)
    observe(
        outcome, driver, (frames_before, end[0]), (events_before, end[1]), (coils_before, end[2])
    )
    judge(outcome)
    outcome.duration_s = driver.now - start
    return outcome


def _request(driver: Driver, request: EmsRequest, reset: bool = False) -> None:
    driver.system.ems.script = (EmsCommand(driver.system.t, request, reset),)


def _ready(driver: Driver) -> bool:
    """Standby without a fault, with every measurement in: a freshly started controller
    judges nothing before the slowest frame (temperatures) has arrived once."""
    _request(driver, EmsRequest.STANDBY, reset=True)
    rec = driver.record
    rec.forget()
    if not driver.wait(lambda: rec.soc_known, READY_S):
        return False
    driver.run_for(driver.timing.periods["temperature"])
    ok = driver.wait(lambda: rec.state == "standby" and rec.level < FAULT_LEVEL, READY_S)
    driver.run_for(RESET_HOLD_S)
    _request(driver, EmsRequest.STANDBY)
    driver.run_for(0.2)
    return ok and rec.state == "standby" and rec.level < FAULT_LEVEL


def _diagnosis_bit(diagnosis: str) -> int | None:
    if diagnosis in CONTACTOR_BITS:
        return CONTACTOR_BITS[diagnosis]
    try:
        return Check(diagnosis).bit
    except ValueError:
        return None


def observe(
    outcome: Outcome,
    driver: Driver,
    frames: tuple[int, int],
    events: tuple[int, int],
    coils: tuple[int, int],
) -> None:
    """Read the reactions between the onset and the end of the window from the record."""
    rec, row, t0 = driver.record, outcome.row, outcome.onset
    after = [(t, n, s) for t, n, s in rec.frames[slice(*frames)] if t >= t0 - 1e-9]
    limits = [(t, s) for t, n, s in after if n == "BMS_Limits"]
    before = [s for t, n, s in rec.frames[: frames[0]] if n == "BMS_Limits"]
    if isinstance(driver, _lockstep_type()):
        seen = [(t, d, lv) for t, d, lv in rec.events[slice(*events)] if t >= t0 - 1e-9]
        names = {3: "fault", 2: "alarm", 1: "warning"}
        shown = [(d, lv) for _, d, lv in seen if lv >= ALARM_LEVEL or d == row.diagnosis]
        outcome.observed = list(dict.fromkeys(f"{d} ({names[lv]})" for d, lv in shown))
        wanted = {"fault": FAULT_LEVEL, "alarm": ALARM_LEVEL, "warning": 1}[row.level]
        hit = [t for t, d, lv in seen if d == row.diagnosis and lv >= wanted]
    else:
        outcome.observed, hit = _from_status(after, row)
        outcome.on_bus = row.diagnosis == "none" or shown_on_bus(row.diagnosis)
        if not outcome.on_bus:
            outcome.observed.append("diagnosis not on the bus")
    states = [STATE_NAMES.get(int(s["BMS_State"]), "?") for t, n, s in after if n == "BMS_Status"]
    moved = [b for a, b in zip([row.state, *states], states, strict=False) if a != b]
    if moved:
        outcome.observed.append("state " + " > ".join(dict.fromkeys(moved)))
    if row.diagnosis != "none" and hit:
        outcome.diagnosis_at = hit[0] - t0
    zero = [
        t
        for t, s in limits
        if s["BMS_ChargeCurrentLimit"] == 0 and s["BMS_DischargeCurrentLimit"] == 0
    ]
    if row.reaction == "stop_charging":
        outcome.limits_at = _charger_stop(rec.frames[: frames[0]], after, t0)
    elif row.reaction == "derate" and before:
        last = before[-1]
        key = (
            "BMS_ChargeCurrentLimit"
            if row.state == "closed_charge"
            else "BMS_DischargeCurrentLimit"
        )
        lower = [t for t, s in limits if s[key] < 0.99 * last[key]]
        outcome.limits_at = lower[0] - t0 if lower else None
    elif zero:
        outcome.limits_at = zero[0] - t0
    commands = [t for t, n, s in after if n == "ContactorCommand"]
    opened = [
        t for t, n, s in after
        if n == "ContactorCommand" and not any(s[k] for k in COILS)
    ]  # fmt: skip
    first = coils[0]
    was_closed = any(on for _, on in rec.coils[first - 1 : first]) if first else False
    if was_closed and opened and commands:
        outcome.open_at = opened[0] - t0
    off = [step for step, on in rec.coils[slice(*coils)] if not on]
    if was_closed and off:
        outcome.coils_at = driver.step_time(off[0]) - t0
    outcome.plot = _plot_data(rec.frames[: frames[1]], t0)


def _charger_running(signals: dict) -> bool:
    values = {name.split("_", 1)[1]: v for name, v in signals.items()}
    return values["Control"] == 0 and values["MaxChargeCurrent"] > 0


def _charger_stop(before: list, after: list, t0: float) -> float | None:
    """The first charger command after the onset that stops a charger which was charging at
    the onset (shown in the limits column); None when none was charging then."""
    last = {n: _charger_running(s) for t, n, s in before if n.startswith(CHARGER_COMMAND)}
    running = {n for n, on in last.items() if on}
    stops = [t - t0 for t, n, s in after if n in running and not _charger_running(s)]
    return stops[0] if stops else None


def _lockstep_type() -> type:
    from hil.drivers import LockStep

    return LockStep


def shown_on_bus(diagnosis: str) -> bool:
    """BMS_Status shows the protection checks (a fault bit, BMS_FaultLevel for any level)
    and the contactor faults (their bits); a device's, the command gate's and the other
    catalogue diagnoses are in the event log only, so a black box judges their reactions."""
    return diagnosis in CHECKS or diagnosis in CONTACTOR_BITS


def _from_status(after: list, row: Row) -> tuple[list[str], list[float]]:
    """Black box: the diagnosis is what BMS_Status shows (a fault bit, or the alarm level)."""
    status = [(t, s) for t, n, s in after if n == "BMS_Status"]
    observed: list[str] = []
    for _, s in status:
        bits = int(s["BMS_ActiveFaults"])
        for bit in range(32):
            if bits >> bit & 1 and f"bit {bit}" not in observed:
                observed.append(f"bit {bit}")
        if int(s["BMS_FaultLevel"]) == ALARM_LEVEL and "alarm" not in observed:
            observed.append("alarm")
    if row.diagnosis == "none":
        return observed, []
    if row.level != "fault":
        wanted = ALARM_LEVEL if row.level == "alarm" else 1
        return observed, [t for t, s in status if int(s["BMS_FaultLevel"]) >= wanted]
    bit = _diagnosis_bit(row.diagnosis)
    if bit is None:
        return observed, []
    if bit == PLAUSIBILITY_BIT or bit < 32:
        return observed, [t for t, s in status if int(s["BMS_ActiveFaults"]) >> bit & 1]
    return observed, []


def judge(outcome: Outcome) -> None:
    """Each expected reaction within its bound; nothing at all where nothing is expected."""
    row, b = outcome.row, outcome.bounds
    assert b is not None
    fail = outcome.failures
    if row.diagnosis == "none":
        raised = [o for o in outcome.observed if o.endswith("(fault)") or o.startswith("bit")]
        if raised:
            fail.append(f"expected no fault, saw {', '.join(raised)}")
        return
    raised = [o for o in outcome.observed if o.endswith("(fault)")]
    if row.reaction == "none" and raised:
        fail.append(f"expected no fault, saw {', '.join(raised)}")
    checks = [("diagnosis", outcome.diagnosis_at, b.diagnosis)] if outcome.on_bus else []
    if row.reaction in ("open", "limits_zero", "derate"):
        checks.append(("limits", outcome.limits_at, b.limits))
    if row.reaction == "stop_charging":
        checks.append(("charger stop", outcome.limits_at, b.limits))
    if row.reaction == "open" and row.state != "standby":
        checks += [
            ("open command", outcome.open_at, b.open_command),
            ("coils open", outcome.coils_at, b.coils),
        ]
    for what, seen, terms in checks:
        bound = total(terms)
        if seen is None:
            fail.append(f"{what}: not seen within {bound:.3f} s")
        elif seen > bound + 1e-9:
            fail.append(f"{what}: {seen:.3f} s > bound {bound:.3f} s = {formula(terms)}")


def _plot_data(frames: list, t0: float) -> dict[str, list[float]]:
    """Cell envelope, current and limits from the controller's frames around the onset."""
    lo = t0 - 2.0
    out: dict[str, list[float]] = {
        k: [] for k in ("t_cell", "vmin", "vmax", "t_i", "i", "t_lim", "ccl", "dcl")
    }
    for t, n, s in frames:
        if t < lo:
            continue
        if n == "BMS_CellStats":
            out["t_cell"].append(t - t0)
            out["vmin"].append(float(s["BMS_MinCellVoltage"]))
            out["vmax"].append(float(s["BMS_MaxCellVoltage"]))
        elif n == "BMS_PackValues":
            out["t_i"].append(t - t0)
            out["i"].append(float(s["BMS_PackCurrent"]))
        elif n == "BMS_Limits":
            out["t_lim"].append(t - t0)
            out["ccl"].append(float(s["BMS_ChargeCurrentLimit"]))
            out["dcl"].append(float(s["BMS_DischargeCurrentLimit"]))
    return out
