"""The textual front end: panels drawn from `MonitorModel.view`, refreshed four times a second.

Keys: ``p`` pauses the picture (frames are still decoded), up/down select a module for the
detail panel, ``r`` asks for a fault reset only when the monitor was started with commands
allowed, ``q`` quits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static

from canbms.monitor.model import MonitorModel, View
from canbms.monitor.source import BusSource

REFRESH_S = 0.25
LEVELS = ("none", "warning", "alarm", "fault")
LEVEL_STYLE = ("green", "yellow", "dark_orange", "bold red")


def _v(value: float | None, unit: str, digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f} {unit}"


def _shade(x: float) -> str:
    """Blue (lowest) through green to red (highest)."""
    x = min(max(x, 0.0), 1.0)
    red, blue = int(255 * max(0.0, 2 * x - 1)), int(255 * max(0.0, 1 - 2 * x))
    return f"rgb({red},{int(255 * (1 - abs(2 * x - 1)))},{blue})"


def heat_row(values: np.ndarray, low: float | None, high: float | None, fmt: str,
             width: int, marks: np.ndarray | None = None) -> Text:  # fmt: skip
    """One module's values coloured between the pack's ``low`` and ``high``; '*' balancing."""
    row = Text()
    span = (high - low) if low is not None and high is not None and high > low else 0.0
    for i, value in enumerate(values.tolist()):
        if not math.isfinite(value):
            row.append("-" * width + "  ", style="grey50")
            continue
        shade = _shade((value - low) / span) if span else "green"
        mark = "*" if marks is not None and marks[i] else " "
        row.append(format(value, fmt).rjust(width), style=f"black on {shade}")
        row.append(mark + " ", style="bold")
    return row


class MonitorApp(App[None]):
    """``source`` gives frames by bus; ``clock`` is the frames' clock (python-can stamps
    wall-clock time); ``history`` reads the state store; ``reset`` sends a fault reset
    request and says how it went (None: commands not allowed)."""

    CSS = """
    Screen { layout: vertical; }
    #status { height: 1; }
    #main { height: 1fr; }
    #left { width: 52; }
    #right { width: 1fr; }
    .panel { border: round $accent; height: auto; padding: 0 1; }
    #heatmap, #events { height: 1fr; }
    """
    BINDINGS = [
        Binding("p", "pause", "pause"),
        Binding("up", "module(-1)", "module up"),
        Binding("down", "module(1)", "module down"),
        Binding("r", "reset", "fault reset"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        model: MonitorModel,
        source: BusSource,
        clock: Callable[[], float] = time.time,
        history: Callable[[], list[str]] | None = None,
        reset: Callable[[], str] | None = None,
    ) -> None:
        super().__init__()
        self.model, self.source, self.clock = model, source, clock
        self.history, self.reset = history, reset
        self.paused = False
        self.module = 0
        self.message = ""
        self.shown: View | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Static(id="pack", classes="panel")
                yield Static(id="diagnoses", classes="panel")
                yield Static(id="buses", classes="panel")
                yield Static(id="frames", classes="panel")
            with Vertical(id="right"):
                yield Static(id="heatmap", classes="panel")
                yield Static(id="module", classes="panel")
                yield Static(id="events", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "canbms monitor"
        self.set_interval(REFRESH_S, self.refresh_view)
        self.refresh_view()

    # -- keys ---------------------------------------------------------------------------

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.refresh_view()

    def action_module(self, step: int) -> None:
        self.module = (self.module + step) % self.model.pack.modules
        self.refresh_view()

    def action_reset(self) -> None:
        if self.reset is None:
            self.message = "fault reset: start the monitor with --allow-commands to send one"
            self.refresh_view()
            return
        self.message = "fault reset: requesting..."
        self.run_worker(self._reset, thread=True, exclusive=True)

    def _reset(self) -> None:
        assert self.reset is not None
        outcome = self.reset()
        self.call_from_thread(self._said, f"fault reset: {outcome}")

    def _said(self, message: str) -> None:
        self.message = message
        self.refresh_view()

    # -- drawing ------------------------------------------------------------------------

    def refresh_view(self) -> None:
        for bus, messages in self.source.drain().items():
            self.model.feed(messages, bus)
        if not self.query("#status"):  # closing: the refresh timer outlived the widgets
            return
        if self.paused and self.shown is not None:
            self._status(self.shown)
            return
        view = self.shown = self.model.view(self.clock())
        self._status(view)
        self.query_one("#pack", Static).update(self._pack(view))
        self.query_one("#diagnoses", Static).update(self._diagnoses(view))
        self.query_one("#buses", Static).update(self._buses(view))
        self.query_one("#frames", Static).update(self._frames(view))
        self.query_one("#heatmap", Static).update(self._heatmap(view))
        self.query_one("#module", Static).update(self._module(view))
        self.query_one("#events", Static).update(self._events(view))

    def _status(self, v: View) -> None:
        level = v.fault_level
        line = Text()
        line.append(f" {v.state or 'no BMS_Status'} ", style="bold reverse")
        line.append(f"  contactors {v.contactors or '-'}  EMS requests {v.requested or '-'}  ")
        if level is not None:
            line.append(f"fault level {level} {LEVELS[level]}", style=LEVEL_STYLE[level])
        if self.paused:
            line.append("  PAUSED", style="bold yellow")
        if self.message:
            line.append(f"  {self.message}", style="italic")
        self.query_one("#status", Static).update(line)

    def _pack(self, v: View) -> Text:
        lo, hi, mean = v.cell_stats
        tlo, thi, tmean = v.temperature_stats
        limits = "  ".join(
            f"{k} {_v(v.limits.get(k), 'A' if k in ('CCL', 'DCL') else 'V')}"
            for k in ("CCL", "DCL", "CVL", "DVL")
        )
        return Text(
            f"SOC {_v(v.soc, '%')}  SOH {_v(v.soh, '%')}\n"
            f"current {_v(v.current, 'A')}  pack {_v(v.pack_voltage, 'V', 2)}\n"
            f"{limits}\n"
            f"cells min {_v(lo, 'V', 3)} max {_v(hi, 'V', 3)} mean {_v(mean, 'V', 3)}\n"
            f"temp  min {_v(tlo, 'degC')} max {_v(thi, 'degC')} mean {_v(tmean, 'degC')}"
        )

    def _diagnoses(self, v: View) -> Text:
        if not v.diagnoses:
            return Text("no active fault", style="green")
        out = Text()
        for bit, d in v.diagnoses:
            out.append(f"{d.code} {d.id} (bit {bit})\n", style="bold red")
            out.append(f"  {d.cause}\n")
        return out

    def _buses(self, v: View) -> Text:
        out = Text()
        for bus, load in v.loads.items():
            share = "-" if load.percent is None else f"{load.percent:.1f} %"
            out.append(f"{bus}: {load.frames_per_s:.0f} frames/s, load {share}\n")
        rejected = [r for r in v.rejects if r.total]
        if not rejected:
            out.append("E2E: no frame rejected", style="green")
        for r in rejected:
            reasons = ", ".join(f"{n} {c}" for n, c in r.by_reason.items())
            out.append(f"E2E {r.source}: {r.total} rejected ({reasons})\n", style="red")
        return out

    def _frames(self, v: View) -> Text:
        out = Text()
        for name, values in v.frames.items():
            out.append(f"{name}\n", style="bold")
            for signal, value in values.items():
                out.append(f"  {signal} {_plain(value)} {v.units.get(signal, '')}\n")
        return out or Text("no other master frame")

    def _heatmap(self, v: View) -> Text:
        lo, hi, _ = v.cell_stats
        tlo, thi, _ = v.temperature_stats
        out = Text("cell voltages (V; * balancing)          temperatures (degC)\n")
        for m in range(v.cells.shape[0]):
            mark = ">" if m == self.module else " "
            out.append(f"{mark}M{m:02} ", style="bold reverse" if m == self.module else "")
            out.append_text(heat_row(v.cells[m], lo, hi, ".3f", 5, v.balancing[m]))
            out.append(" ")
            out.append_text(heat_row(v.temperatures[m], tlo, thi, ".1f", 5))
            out.append("\n")
        return out

    def _module(self, v: View) -> Text:
        m = self.module
        source = next((r for r in v.rejects if r.source == f"M{m:02}"), None)
        cells = v.cells[m]
        known = cells[np.isfinite(cells)]
        spread = f"{(known.max() - known.min()) * 1000:.1f} mV" if known.size else "-"
        balancing = np.flatnonzero(v.balancing[m]).tolist()
        return Text(
            f"module {m}: {known.size}/{cells.size} cells valid, spread {spread}, "
            f"balancing cells {balancing or 'none'}, "
            f"E2E rejects {source.total if source else 0}"
        )

    def _events(self, v: View) -> Text:
        out = Text("events (from the frames)\n", style="bold")
        for t, text in v.events[-12:]:
            out.append(f"{time.strftime('%H:%M:%S', time.localtime(t))} {text}\n")
        if self.history is not None:
            out.append("state store history\n", style="bold")
            for line in self.history()[-8:]:
                out.append(f"  {line}\n")
        return out


def _plain(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
