"""SOC accuracy against plant truth: the per-cell model-based estimate beside the reference of
coulomb counting with rest correction, on the same runs.

The plant (`slaves.cells.CellArray`) and both estimators are stepped directly, without the
buses and the rest of the controller, at ``STEP_S``: the cells' RC pair is integrated
exactly for a constant current, the readings are sampled at the same instant as the current
(as the controller's steady-current rule arranges), so a coarse step changes nothing but the
number of readings. The measurement errors are those of real sensors: cell voltage noise
0.5 mV, current noise 0.1 A, and per case an offset and gain error of the current sensor.

Each case reports the RMS and the largest error (controller minus truth, SOC points) of the
pack SOC (usable SOC of the string, `controller.limits.soc.pack_soc`, against the same
figure from the true cells; the reference publishes its mean cell) and of the lowest cell's
SOC, over the time the estimate is valid; for a restart under load the largest error counts
from ``RESTART_GRACE_S`` of driving on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from controller.estimation import SohConfig, SohEstimator
from controller.limits import SocEstimator, SocInputs, parse_soc
from controller.limits.soc import pack_soc
from controller.measurements import ArrayStats
from controller.presets import load_preset
from slaves.ageing import Ageing
from slaves.cells import CellArray, CellSpread
from slaves.chemistry import LFP, NMC, Chemistry

STEP_S = 1.0
CELLS = 96
RESTART_GRACE_S = 600.0
VOLTAGE_NOISE_V = 0.5e-3
CURRENT_NOISE_A = 0.1

Profile = Callable[[float], float]  # time (s) -> C-rate, + = charging


@dataclass(frozen=True)
class Case:
    chemistry: Chemistry
    profile: Profile
    duration_s: float
    initial_soc: float  # fraction
    offset_a: float = 0.0
    gain: float = 1.0
    spread: CellSpread = CellSpread()
    fade: float = 0.0  # capacity lost by ageing (mean)
    start_s: float = 0.0  # estimators start here (a restart); the plant runs from 0
    # before the profile, a pack powered up rests this long with its contactors open (not
    # for a restart): the reference takes its first estimate from OCV there, as it would
    power_up_s: float = 60.0
    temperature_c: float = 25.0
    initial_hysteresis: float = 0.0


@dataclass(frozen=True)
class Errors:
    rms: float
    max: float


@dataclass(frozen=True)
class Result:
    pack: Errors
    min_cell: Errors
    baseline_pack: Errors
    baseline_min_cell: Errors
    valid_after_s: float  # from the estimators' start; inf: never valid
    error_at_grace: float  # pack error RESTART_GRACE_S after the start
    wall_s: float


def _steps(*legs: tuple[float, float]) -> Profile:
    """Legs of (duration s, C-rate), repeated."""
    ends = np.cumsum([d for d, _ in legs])
    rates = [r for _, r in legs]

    def profile(t: float) -> float:
        return rates[int(np.searchsorted(ends, t % ends[-1], side="right")) % len(rates)]

    return profile


def _drive(seed: int, mean_c: float) -> Profile:
    """10 s pulses of a city/highway mix (peaks -2C, regeneration +0.5C, stops), scaled to
    the mean ``mean_c``."""
    rng = np.random.default_rng(seed)
    levels = rng.choice([-2.0, -1.2, -0.6, -0.3, 0.0, 0.0, 0.3, 0.5], size=4096)
    levels = levels * (mean_c / levels.mean())  # stops stay stops

    def profile(t: float) -> float:
        return float(levels[int(t // 10.0) % levels.size])

    return profile


H = 3600.0
CASES: dict[str, Case] = {
    "rest-to-rest cycle": Case(
        NMC,
        _steps((1800, 0.0), (5 * H / 4, -0.5), (H, 0.0), (5 * H / 4, 0.5), (1800, 0.0)),
        4.5 * H,
        0.85,
    ),
    "drive cycle": Case(NMC, _drive(1, -0.3), 2 * H, 0.9, offset_a=0.1, gain=1.003),
    "drive cycle at 10 degC": Case(
        NMC, _drive(1, -0.3), 2 * H, 0.9, offset_a=0.1, gain=1.003, temperature_c=10.0
    ),
    "restart under load (1C)": Case(
        NMC, _steps((H, -1.0)), 50 * 60, 0.8, offset_a=0.1, start_s=1200.0
    ),
    "restart under load (drive)": Case(
        NMC, _drive(2, -0.5), 55 * 60, 0.85, offset_a=0.1, start_s=1200.0
    ),
    "sensor offset 0.25 A, 8 h": Case(
        NMC, _steps((1200, 0.25), (1200, -0.25)), 8 * H, 0.5, offset_a=0.25
    ),
    "capacity spread 5 %": Case(
        NMC,
        _steps((2400, 0.0), (1.4 * H, -0.5), (H, 0.0), (H, 0.5), (2400, 0.0), (1.7 * H, -0.4)),
        8.9 * H,
        0.95,
        offset_a=0.1,
        spread=CellSpread(capacity=0.05),
    ),
    "capacity spread 10 %": Case(
        NMC,
        _steps((2400, 0.0), (1.4 * H, -0.5), (H, 0.0), (H, 0.5), (2400, 0.0), (1.7 * H, -0.4)),
        8.9 * H,
        0.95,
        offset_a=0.1,
        spread=CellSpread(capacity=0.10),
    ),
    "10 % fade": Case(
        NMC,
        _steps((2400, 0.0), (1.2 * H, -0.5), (H, 0.0), (1.2 * H, 0.5), (H, 0.0), (H, -0.5)),
        6.6 * H,
        0.9,
        offset_a=0.1,
        fade=0.1,
    ),
    "LFP with hysteresis": Case(
        LFP,
        _steps((H, 0.0), (H, 0.5), (H, 0.0), (0.8 * H, -0.5), (H, 0.0), (2 * H, -0.15)),
        6.8 * H,
        0.3,
        offset_a=0.25,
        gain=1.005,
        initial_hysteresis=-1.0,
    ),
}


def run(case: Case, seed: int = 0) -> Result:
    """Plant, model-based estimate (with the SOH estimate feeding it) and the reference."""
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    chemistry = case.chemistry
    if case.fade:
        chemistry = replace(chemistry, ageing=Ageing(capacity_fade_per_efc=case.fade / 100.0))
    plant = CellArray(
        chemistry,
        CELLS,
        rng,
        initial_soc=case.initial_soc,
        spread=case.spread,
        initial_hysteresis=case.initial_hysteresis,
    )
    if case.fade:
        plant.age(efc=100.0)
        plant.chemistry = replace(chemistry, ageing=Ageing())  # no further fade in the run
    name = chemistry.name.lower()
    soc_cfg = parse_soc({**load_preset("soc", name), "capacity_ah": chemistry.capacity_ah})
    estimator = SocEstimator(soc_cfg, CELLS)
    soh = SohEstimator(SohConfig(max_sample_interval_ms=2000.0 * STEP_S), soc_cfg, CELLS)
    nominal = chemistry.capacity_ah
    s_soc, s_soh = estimator.initial_state(), soh.initial_state()
    none = np.zeros(CELLS, bool)
    valid_all = np.ones(CELLS, bool)
    ours_pack: list[float] = []
    ours_min: list[float] = []
    ref_pack: list[float] = []
    ref_min: list[float] = []
    ours_at: list[float] = []
    ref_at: list[float] = []
    valid_after, at_grace = math.inf, math.nan
    t = 0.0
    end = case.duration_s + (0.0 if case.start_s else case.power_up_s)
    while t < end:
        lead = 0.0 if case.start_s else case.power_up_s
        true_i = case.profile(t - lead) * nominal if t >= lead else 0.0
        plant.step(STEP_S, true_i, case.temperature_c)
        t += STEP_S
        if t < case.start_s:
            continue
        measured_i = case.gain * true_i + case.offset_a + CURRENT_NOISE_A * rng.standard_normal()
        volts = plant.voltage + VOLTAGE_NOISE_V * rng.standard_normal(CELLS)
        stamp = np.full(CELLS, t)
        health = s_soh.health
        s_soc = estimator.step(
            s_soc,
            SocInputs(
                volts,
                valid_all,
                stamp,
                ArrayStats.of(volts, valid_all),
                measured_i,
                True,
                case.temperature_c,
                health.cell_capacity_ah,
                health.resistance_ohm,
            ),
            t,
        )
        s_soh = soh.step(s_soh, volts, valid_all, stamp, measured_i, True, none, t)
        truth = np.clip(plant.soc * 100.0, 0.0, 100.0)
        true_pack = pack_soc(truth, plant.capacity_c / 3600.0)
        if s_soc.valid and math.isinf(valid_after):
            valid_after = t - case.start_s
        if t - case.start_s == RESTART_GRACE_S:
            at_grace = s_soc.pack - true_pack if s_soc.valid else math.inf
        since = t - case.start_s
        if s_soc.valid:
            ours_pack.append(s_soc.pack - true_pack)
            ours_min.append(s_soc.soc_min - truth.min())
            ours_at.append(since)
        count = s_soc.counting
        if count.valid:
            ref_pack.append(count.soc_mean - true_pack)
            ref_min.append(count.soc_min - truth.min())
            ref_at.append(since)
    grace = RESTART_GRACE_S if case.start_s else 0.0
    ours, ref = np.asarray(ours_at) >= grace, np.asarray(ref_at) >= grace
    return Result(
        pack=_errors(ours_pack, ours),
        min_cell=_errors(ours_min, ours),
        baseline_pack=_errors(ref_pack, ref),
        baseline_min_cell=_errors(ref_min, ref),
        valid_after_s=valid_after,
        error_at_grace=at_grace,
        wall_s=time.perf_counter() - began,
    )


def _errors(errors: list[float], counted: np.ndarray) -> Errors:
    """RMS over every valid step, largest over the ``counted`` ones."""
    e = np.asarray(errors)
    if e.size == 0:
        return Errors(math.inf, math.inf)
    worst = float(np.max(np.abs(e[counted]))) if counted.any() else math.inf
    return Errors(float(np.sqrt(np.mean(e * e))), worst)


def step_cost_ms(cells: int, steps: int = 200, share: int = 10) -> float:
    """Median wall time (ms) of one SOC estimator step under a steady current when one cell
    in ``share`` has a fresh reading (cells report every 100 ms, the cycle is 10 ms; 1: every
    cell at once): prediction, correction, publication and the reference."""
    soc_cfg = parse_soc({**load_preset("soc", "nmc"), "capacity_ah": NMC.capacity_ah})
    estimator = SocEstimator(soc_cfg, cells)
    rng = np.random.default_rng(0)
    volts = 3.7 + 0.01 * rng.standard_normal(cells)
    valid = np.ones(cells, bool)
    stats = ArrayStats.of(volts, valid)
    capacity, resistance = np.full(cells, NMC.capacity_ah), np.full(cells, np.nan)
    updated_at = np.full(cells, 0.0)
    state = estimator.initial_state()
    times = []
    for k in range(steps):
        now = 0.01 * (k + 100)
        updated_at[k % share :: share] = now
        inputs = SocInputs(volts, valid, updated_at, stats, -50.0, True, 25.0, capacity, resistance)
        began = time.perf_counter()
        state = estimator.step(state, inputs, now)
        times.append(time.perf_counter() - began)
    return float(np.median(times) * 1000.0)
