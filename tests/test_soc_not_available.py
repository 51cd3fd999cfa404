"""An unknown SOC is never published as 0 %: BMS_PackValues carries the DBC's NotAvailable,
CAN-BMS withholds 0x355, CiA 418 6081h reads 0xFF; the simulated inverter and charger then
have no SOC. Frames are decoded with cantools and the canopen package."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cantools
import pytest
from adapter_support import batch, snapshot
from canopen_support import unique_channel, virtual_networks
from core_support import Rig
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.canbms_inverter import CanBmsInverter, InverterConfig
from controller.canopen_node import BatteryNode, BatteryNodeConfig
from controller.canopen_node import dictionary as d
from controller.canopen_node.values import RequestParams, live_values
from controller.stage import StageInputs
from dbc import path as dbc_path
from slaves.cia419_charger import ChargerConfig, Cia419Charger
from slaves.inverter import Inverter
from slaves.inverter import InverterConfig as PlantInverterConfig

MASTER = cantools.database.load_file(str(dbc_path("canbms_master.dbc")), strict=True)
PACK_VALUES = MASTER.get_message_by_name("BMS_PackValues")


def published_soc(rig: Rig) -> list[object]:
    """BMS_SOC of every BMS_PackValues sent, decoded with its choices."""
    return [
        PACK_VALUES.decode(data)["BMS_SOC"]
        for _, name, data in rig.plant.raw
        if name == "BMS_PackValues"
    ]


class RecordingRig(Rig):
    """The rig, keeping the raw payload of every master frame as well."""

    def __init__(self) -> None:
        super().__init__()
        self.plant.raw = []

    def deliver(self, frames) -> None:  # noqa: ANN001 - as Rig.deliver
        for frame in frames:
            if frame.arbitration_id == PACK_VALUES.frame_id:
                self.plant.raw.append((self.now, "BMS_PackValues", frame.data))
        super().deliver(frames)


def test_bms_pack_values_says_not_available_until_the_soc_is_known() -> None:
    """Cell voltages silent at start: no OCV, no SOC; once they arrive the SOC is published."""
    rig = RecordingRig()
    rig.plant.silent.add("cells")
    rig.run(1.0)
    early = published_soc(rig)
    assert len(early) >= 9 and all(str(v) == "NotAvailable" for v in early)
    raw = [PACK_VALUES.decode(p, decode_choices=False)["BMS_SOC"] for *_, p in rig.plant.raw]
    assert set(raw) == {409.5}  # raw 4095
    rig.plant.silent.discard("cells")
    rig.run_until(lambda r: r.state.soc.valid, 5.0)
    rig.run(0.2)
    soc = rig.state.soc.pack  # the usable SOC of the string is what goes out
    last = published_soc(rig)[-1]
    assert last == pytest.approx(soc, abs=0.051)
    assert all(v != 0 for v in published_soc(rig))


@given(st.one_of(st.just(math.nan), st.floats(0.0, 100.0)))
def test_the_inverter_gets_0x355_only_with_a_known_soc(soc: float) -> None:
    inverter = CanBmsInverter(InverterConfig(variant="sma", keepalive=False))
    _, out = inverter.step(inverter.initial_state(), StageInputs(snapshot(soc=soc), batch([])), 0.0)
    ids = {f.arbitration_id for f in out.frames}
    assert 0x351 in ids
    if math.isnan(soc):
        assert 0x355 not in ids
        return
    db = cantools.database.load_file(str(dbc_path("canbms_inverter_sma.dbc")))
    [frame] = [f for f in out.frames if f.arbitration_id == 0x355]
    decoded = db.decode_message(0x355, frame.data)
    assert decoded["StateOfCharge"] == pytest.approx(soc, abs=0.51)
    assert decoded["StateOfChargeHiRes"] == pytest.approx(soc, abs=0.0051)


@dataclass
class _Link:
    link_voltage: float = 400.0
    load_current: float = 0.0


class _Message:
    def __init__(self, frame) -> None:  # noqa: ANN001 - an OutFrame
        self.arbitration_id, self.data, self.is_extended_id = (
            frame.arbitration_id,
            frame.data,
            False,
        )


def test_the_simulated_inverter_has_no_soc_while_the_bms_withholds_it() -> None:
    bms = CanBmsInverter(InverterConfig(variant="victron", keepalive=False, period=1.0))
    plant = Inverter(_Link(), config=PlantInverterConfig(variant="victron"))
    state, seen = bms.initial_state(), []
    for k in range(100):  # 10 s: SOC known for 4 s, then unknown
        t = k * 0.1
        soc = 55.0 if t < 4.0 else math.nan
        state, out = bms.step(state, StageInputs(snapshot(soc=soc), batch([])), t)
        for frame in out.frames:
            plant.receive(_Message(frame))
        plant.step(t, 0.1)
        seen.append((t, plant.soc_at(t)))
    assert all(v == 55.0 for t, v in seen if 0.0 <= t < 4.0)
    assert all(v is None for t, v in seen if t > 4.0 + plant.config.limits_timeout_s)
    assert all(v in (55.0, None) for _, v in seen)  # never 0


def test_cia418_soc_reads_0xff_when_unknown() -> None:
    assert live_values(snapshot(soc=math.nan), RequestParams())[d.SOC] == 0xFF
    assert live_values(snapshot(soc=63.4), RequestParams())[d.SOC] == 63


def test_the_cia419_charger_sees_soc_not_available(request) -> None:
    channel = unique_channel(request.node.name)
    with virtual_networks(channel) as (net_a, net_b):
        battery = BatteryNode(net_a, BatteryNodeConfig(node_id=5, heartbeat_ms=100, tpdo3_ms=50))
        charger = Cia419Charger(net_b, ChargerConfig(node_id=0x10, battery_node_id=5))
        try:
            t = 0.0
            for soc, expected in ((72.0, 72.0), (math.nan, None), (40.0, 40.0)):
                for _ in range(30):
                    battery.update(snapshot(soc=soc), t)
                    time.sleep(0.002)
                    charger.step(t)
                    t += 0.01
                assert charger.battery_soc == expected
                raw = charger.node.sdo["Battery state of charge"].raw
                assert raw == (0xFF if expected is None else expected)
        finally:
            charger.close()
            battery.close()
