"""A run on one page: cell voltages, current against its limits, SOC and temperatures.

Four panels on one time axis, with the contactors' closed stretches shaded (green for
discharge, blue for charge) and every warning, alarm and fault the controller set drawn as
a vertical line in its colour (a fault reset the controller accepted: a dashed green line),
listed beside the top panel. matplotlib is an optional
dependency (``pip install canbms[plot]``); `render` says so when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from controller.adapters.base import Level
from hil.series import RESET, Series

LEVEL_COLOURS = {Level.WARNING: "#d89000", Level.ALARM: "#e05000", Level.FAULT: "#c00000"}
SPAN_COLOURS = {"discharge": "#2ca02c", "charge": "#1f77b4"}
RESET_COLOUR = "#2ca02c"
MAX_LISTED = 8  # diagnoses listed beside the plot; the lines show every one


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():  # noqa: ANN202 - matplotlib's module, imported only when plotting
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotUnavailable(
            "plots need matplotlib: pip install 'canbms[plot]' (or pip install matplotlib)"
        ) from exc
    matplotlib.use("Agg")  # files only, no window: works on a headless controller
    import matplotlib.pyplot as plt

    return plt


def render(series: Series, path: str | Path, title: str) -> Path:
    """Draw ``series`` into ``path`` (PNG, SVG or PDF by its extension)."""
    plt = _pyplot()
    t = series.array("time")
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(12, 9.5), constrained_layout=True)
    volts, amps, soc, temps = axes
    fig.suptitle(title, fontsize=11)

    volts.fill_between(
        t, series.array("cell_min"), series.array("cell_max"), color="#9ecae1", label="min..max"
    )
    volts.plot(t, series.array("cell_min"), color="#08519c", lw=0.8, label="min")
    volts.plot(t, series.array("cell_mean"), color="black", lw=1.0, label="mean")
    volts.plot(t, series.array("cell_max"), color="#a50f15", lw=0.8, label="max")
    volts.set_ylabel("cell voltage (V)")

    amps.plot(t, series.array("current"), color="black", lw=1.0, label="current (+ charges)")
    amps.plot(t, series.array("ccl"), color="#1f77b4", ls="--", lw=1.0, label="CCL")
    amps.plot(t, -series.array("dcl"), color="#2ca02c", ls="--", lw=1.0, label="-DCL")
    amps.axhline(0.0, color="grey", lw=0.5)
    amps.set_ylabel("current (A)")

    soc.plot(t, series.array("soc"), color="#6a3d9a", lw=1.2, label="SOC (mean)")
    soc.set_ylabel("SOC (%)")

    temps.fill_between(
        t, series.array("temp_min"), series.array("temp_max"), color="#fdd0a2", label="min..max"
    )
    temps.plot(t, series.array("temp_mean"), color="#d94801", lw=1.0, label="mean")
    temps.set_ylabel("temperature (°C)")
    temps.set_xlabel("time (s)")

    for start, end, mode in series.closed_spans():
        for ax in axes:
            ax.axvspan(start, end, color=SPAN_COLOURS[mode], alpha=0.08, lw=0)
    _mark_events(series, axes)
    outside = {"loc": "upper left", "bbox_to_anchor": (1.005, 1.0), "fontsize": 8}
    for ax in axes:
        ax.grid(True, lw=0.3, alpha=0.6)
        ax.legend(**outside)
    handles = (
        [
            plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.25, label=f"contactors closed: {m}")
            for m, c in SPAN_COLOURS.items()
        ]
        + [
            plt.Line2D([], [], color=c, ls=":", label=f"{level.name.lower()} set")
            for level, c in LEVEL_COLOURS.items()
        ]
        + [plt.Line2D([], [], color=RESET_COLOUR, ls="--", label="fault reset accepted")]
    )
    temps.legend(handles=[*temps.get_legend_handles_labels()[0], *handles], **outside)
    if t.size:
        volts.set_xlim(t[0], t[-1])
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _mark_events(series: Series, axes: np.ndarray) -> None:
    """A line per diagnosis set (and per fault reset accepted) across every panel, and beside
    the top panel a list of what was set, once per diagnosis at its highest level, by time."""
    first: dict[str, float] = {}
    highest: dict[str, Level] = {}
    resets = []
    for mark in series.marks:
        if mark.diagnosis == RESET:
            resets.append(mark.time)
            for ax in axes:
                ax.axvline(mark.time, color=RESET_COLOUR, ls="--", lw=1.2)
        elif mark.kind == "set":
            level = Level(mark.level)
            for ax in axes:
                ax.axvline(mark.time, color=LEVEL_COLOURS[level], ls=":", lw=1.2)
            first.setdefault(mark.diagnosis, mark.time)
            highest[mark.diagnosis] = max(level, highest.get(mark.diagnosis, level))
    entries = sorted(
        [
            (t, f"{t:6.1f} s  {d} ({highest[d].name.lower()})", LEVEL_COLOURS[highest[d]])
            for d, t in first.items()
        ]
        + [(t, f"{t:6.1f} s  fault reset accepted", RESET_COLOUR) for t in resets]
    )
    if len(entries) > MAX_LISTED:
        more = len(entries) - MAX_LISTED + 1
        entries = [*entries[: MAX_LISTED - 1], (np.inf, f"... {more} more", "black")]
    top = axes[0]
    for row, (_, text, colour) in enumerate(entries):
        top.annotate(
            text,
            xy=(1.005, 0.0),
            xycoords="axes fraction",
            xytext=(0, 11 * (len(entries) - 1 - row)),
            textcoords="offset points",
            va="bottom",
            fontsize=8,
            family="monospace",
            color=colour,
        )
