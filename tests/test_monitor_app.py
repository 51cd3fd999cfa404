"""``canbms monitor`` headless (textual's Pilot) against buses fed by the simulated pack.

The screen is judged by what it says; staleness is judged on the frames' own clock (the
wall-clock time the last frame was sent), so a slow machine changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("textual", reason="textual is the optional extra 'monitor'")

from monitor_support import PackOnBuses  # noqa: E402

from canbms.monitor.app import MonitorApp  # noqa: E402
from canbms.monitor.model import MonitorModel  # noqa: E402
from canbms.monitor.source import BusSource  # noqa: E402
from slaves.faults import CrcCorruption  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pack() -> Iterator[PackOnBuses]:
    rig = PackOnBuses()
    yield rig
    rig.close()


def _text(app: MonitorApp, widget: str) -> str:
    return str(app.query_one(f"#{widget}").render())


async def _settle(pilot, app: MonitorApp) -> None:  # noqa: ANN001
    """Let the monitor take every frame sent so far (its refresh drains the buses)."""
    for _ in range(3):
        await pilot.pause(0.3)
        app.refresh_view()


def _app(pack: PackOnBuses, source: BusSource, **kwargs) -> MonitorApp:  # noqa: ANN003
    model = MonitorModel(pack.config, {"internal": 500_000, "vehicle": 500_000})
    return MonitorApp(model, source, clock=lambda: pack.sent_at, **kwargs)


def test_a_healthy_pack_on_screen(pack: PackOnBuses, tmp_path: Path) -> None:
    source = BusSource(pack.monitor_buses())

    async def scenario() -> None:
        app = _app(pack, source)
        async with app.run_test(size=(160, 50)) as pilot:
            pack.run(300)  # 3 s: precharge, closed, discharging at 20 A
            await _settle(pilot, app)
            status = _text(app, "status")
            assert "Discharge" in status and "fault level 0 none" in status
            assert "contactors Closed" in status and "EMS requests Discharge" in status
            assert "no active fault" in _text(app, "diagnoses")
            pack_text = _text(app, "pack")
            assert "SOC 50.0 %" in pack_text and "current -20.0 A" in pack_text
            assert "CCL " in pack_text and "CCL 0.0 A" not in pack_text
            heat = _text(app, "heatmap").splitlines()
            assert [line[:4] for line in heat[1:9]] == [">M00"] + [f" M{m:02}" for m in range(1, 8)]
            assert all("-----" not in line for line in heat[1:9]), "every cell known"
            buses = _text(app, "buses")
            assert "E2E: no frame rejected" in buses and "internal:" in buses
            await pilot.press("down", "down")
            assert _text(app, "module").startswith("module 2: 12/12 cells valid")
            await pilot.press("p")
            assert "PAUSED" in _text(app, "status")
            await pilot.press("r")
            assert "--allow-commands" in _text(app, "status"), "read-only unless allowed"
            app.save_screenshot("monitor.svg", str(tmp_path))

    try:
        asyncio.run(scenario())
    finally:
        source.close()
    assert (tmp_path / "monitor.svg").read_text().startswith("<svg")


def test_a_fault_on_screen_with_its_cause_and_the_rejected_frames(pack: PackOnBuses) -> None:
    source = BusSource(pack.monitor_buses())

    async def scenario() -> None:
        app = _app(pack, source)
        async with app.run_test(size=(160, 50)) as pilot:
            pack.run(200)
            pack.system.faults.inject(CrcCorruption(2))  # module 2's frames all fail the CRC
            pack.run(150)
            await _settle(pilot, app)
            status = _text(app, "status")
            assert "Error" in status and "fault level 3 fault" in status
            diagnoses = _text(app, "diagnoses")
            assert "109 slave_timeout (bit 9)" in diagnoses
            assert app.model.faults[9][0].cause in diagnoses.replace("\n  ", " ")
            buses = _text(app, "buses")
            assert "E2E M02:" in buses and "CRC" in buses
            assert all(f"E2E M{m:02}" not in buses for m in (0, 1, 3, 4, 5, 6, 7))
            heat = _text(app, "heatmap").splitlines()
            assert heat[3].startswith(" M02 ") and "-----" in heat[3], "module 2 unknown"
            assert "-----" not in heat[2]
            events = _text(app, "events")
            assert "M02: frames rejected (CRC)" in events and "state Error" in events
            assert "fault set: slave_timeout (109, bit 9)" in events

    try:
        asyncio.run(scenario())
    finally:
        source.close()
