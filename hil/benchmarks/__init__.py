"""The benchmark suite behind ``canbms bench``: numbers against baselines of the same run.

| benchmark | measures | baseline |
|---|---|---|
| `decode` | batch decoder frames/s, 10 ms to 1 s batches | a cantools `decode_message` loop |
| `decode` (counter) | alive counter check, 4,096 frames of one ID | frame-by-frame loop |
| `core` | wall time of one `Controller.step`, 100 to 100,000 cells | the 1 ms cycle budget |
| `core` (closed) | the same, 96 cells closed, charging, balancing (target 0.2 ms) | 1 ms budget |
| `core` (p99) | slowest 1 % of the 100,000-cell steps (full run only) | the 10 ms target |
| `core` (data lost) | slowest step with every bus silent, 10,000 and 100,000 cells | healthy step |
| `simulator` | virtual s per wall s of the plant, alone and in closed loop | its target |
| `soc` | RMS SOC error against plant truth, pack and lowest cell | counting + rest, same run |
| `soc` (cost) | wall time of one per-cell SOC step, 96 and 10,000 cells | the 1 ms cycle budget |
| `live` | frames the live runtime takes at 90 % of a 1 Mbit/s bus | frames offered |
| `live` (reaction) | faulty frame to open command, p99 of live injections | delay + cycle + 2 ms |
| `memory` | resident size at 100,000 cells; growth over a simulated hour | before; at 1 min |

Each module measures one thing and returns plain numbers; ``run`` turns them into rows.
The suite lives in ``hil`` because it drives controller, contract and simulator together;
it is part of the install (``canbms bench``) but nothing else imports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measured case: its value, the baseline's and how many times better ours is."""

    benchmark: str
    case: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    better: float  # > 1: faster than the baseline
    note: str = ""


def run(
    quick: bool = False,
    only: tuple[str, ...] = ("decode", "core", "simulator", "soc", "live", "memory"),
    progress: Callable[[str], None] = lambda _: None,
) -> Iterator[Row]:
    """Measure the selected benchmarks; ``quick`` shortens runs and skips 100,000 cells."""
    if "decode" in only:
        from hil.benchmarks import decode

        yield from decode.rows(quick, progress)
    if "core" in only:
        yield from _core(quick, progress)
    if "simulator" in only:
        from hil.benchmarks import simulator

        yield from simulator.rows(quick, progress)
    if "soc" in only:
        yield from _soc(quick, progress)
    if "live" in only:
        from hil.benchmarks import live

        yield from live.rows(quick, progress)
    if "memory" in only:
        from hil.benchmarks import memory

        yield from memory.rows(quick, progress)


def _core(quick: bool, progress: Callable[[str], None]) -> Iterator[Row]:
    """Step time against the budget, the closed small pack against its target too, the
    100,000-cell p99 against its target (full run only) and the loss of all data against
    the healthy step."""
    from hil.benchmarks import core_cycle

    budget = core_cycle.BUDGET_MS
    case, topology = core_cycle.CLOSED_PACK
    progress(f"core: {case}")
    r = core_cycle.measure_closed(topology, 300 if quick else 1000)
    target = core_cycle.SMALL_PACK_TARGET_MS
    yield Row(
        "core",
        case,
        r.median_ms,
        "ms/step (median)",
        "1 ms budget",
        budget,
        budget / r.median_ms,
        f"target {target:g} ms: {target / r.median_ms:.2f}x; p99 {r.p99_ms:.2f} ms, "
        f"{r.frames_per_step:.0f} frames/step, {r.state if r.fault_free else 'FAULT'}",
    )
    for case, topology in core_cycle.PACKS.items():
        if quick and topology.n_cells > 10_000:
            continue
        progress(f"core: {case}")
        r = core_cycle.measure(topology, 100 if quick else 300)
        state = r.state if r.fault_free else f"{r.state}, FAULT"
        yield Row(
            "core",
            case,
            r.median_ms,
            "ms/step (median)",
            "1 ms budget",
            budget,
            budget / r.median_ms,
            f"p99 {r.p99_ms:.2f} ms, {r.frames_per_step:.0f} frames/step, "
            f"build {r.build_s:.1f} s, {state}",
        )
        if topology.n_cells >= 100_000:
            p99 = core_cycle.LARGE_PACK_P99_MS
            yield Row(
                "core",
                f"{case.split(' (')[0]}, p99",
                r.p99_ms,
                "ms/step (p99)",
                f"{p99:g} ms target",
                p99,
                p99 / r.p99_ms,
                f"median {r.median_ms:.2f} ms, max {r.max_ms:.2f} ms",
            )
        if case in core_cycle.LOSS_PACKS:
            progress(f"core: {case}, all data lost")
            loss = core_cycle.measure_loss(topology, 100 if quick else 300)
            yield Row(
                "core",
                f"{case.split(' (')[0]}, all data lost",
                loss.max_ms,
                "ms/step (max)",
                "slowest healthy",
                loss.healthy_max_ms,
                loss.healthy_max_ms / loss.max_ms,
                f"target at most {core_cycle.LOSS_FACTOR:g}x the healthy step "
                f"(ratio >= {1 / core_cycle.LOSS_FACTOR:.2f}); median {loss.median_ms:.2f} ms "
                f"(healthy {loss.healthy_ms:.2f} ms), {loss.events} events, "
                f"{'no fault' if loss.fault_free else 'FAULT'}",
            )


def _soc(quick: bool, progress: Callable[[str], None]) -> Iterator[Row]:
    """Accuracy rows (better = reference error / ours) and the cost rows."""
    from hil.benchmarks import soc_accuracy

    for case_name, case in soc_accuracy.CASES.items():
        progress(f"soc: {case_name}")
        r = soc_accuracy.run(case)
        for what, ours, ref in (
            ("pack", r.pack, r.baseline_pack),
            ("min cell", r.min_cell, r.baseline_min_cell),
        ):
            note = f"max {ours.max:.2f} (reference {ref.max:.2f})"
            if math.isinf(ref.rms):
                note = f"max {ours.max:.2f}; the reference never rests, so never has a SOC"
            if case.start_s:
                note += f", valid after {r.valid_after_s:.0f} s, {r.error_at_grace:+.2f} at 10 min"
            yield Row(
                "soc",
                f"{case_name}, {what} RMS",
                ours.rms,
                "SOC points",
                "counting + rest",
                ref.rms,
                ref.rms / ours.rms if ours.rms > 0 else math.inf,
                note,
            )
    for cells in (96, 10_000):
        progress(f"soc: cost at {cells} cells")
        ms = soc_accuracy.step_cost_ms(cells, 100 if quick else 300)
        every = soc_accuracy.step_cost_ms(cells, 100 if quick else 300, share=1)
        yield Row(
            "soc",
            f"per-cell step, {cells} cells",
            ms,
            "ms/step (median)",
            "1 ms budget",
            1.0,
            1.0 / ms,
            f"a tenth of the cells fresh; every cell fresh {every:.3f} ms",
        )
