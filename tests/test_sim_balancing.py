"""Balancing commands: obeyed when valid, ignored when not, dropped after the timeout."""

from __future__ import annotations

import numpy as np
import pytest
from sim_support import balancing_command, decode

from dbc.topology import Topology
from slaves.balancing import BalancingParams
from slaves.module import ModuleParams
from slaves.simulator import PackSimulator, SimConfig

TOPO = Topology(modules=2, cells_per_module=12, sensors_per_module=4)


def _sim(ambient: float = 25.0, **kw) -> PackSimulator:
    return PackSimulator(TOPO, seed=11, ambient=ambient, **kw)


def _balancing_counts(sim: PackSimulator, frames, module: int = 0) -> list[tuple[float, int]]:
    key = f"M{module:02}_CellsBalancing"
    return [
        (m.timestamp, decode(sim, m)[key]) for m in frames if m.arbitration_id == 0x300 + module
    ]


def _keep_balancing(sim: PackSimulator, cells: list[int], seconds: float, dt: float = 0.01):
    """Send the command every 500 ms like the master; returns the frames sent meanwhile."""
    frames, ctr = [], 0
    for k in range(round(seconds / dt)):
        if k % round(0.5 / dt) == 0:
            sim.receive([balancing_command(sim, 0, cells, ctr)])
            ctr += 1
        frames += sim.step(dt)
    return frames


def test_command_bleeds_the_masked_cells_and_reports_the_count() -> None:
    sim = _sim()
    sim.receive([balancing_command(sim, 0, [1, 5, 11], 0)])
    frames = sim.run(0.3)
    bleeding = np.flatnonzero(sim.bleed)
    assert bleeding.tolist() == [1, 5, 11]
    v = sim.cell_voltages
    np.testing.assert_allclose(sim.bleed[bleeding], v[bleeding] / 33.0, rtol=1e-3)
    counts = _balancing_counts(sim, frames)
    assert counts and all(n == 3 for _, n in counts)
    assert all(n == 0 for _, n in _balancing_counts(sim, frames, module=1))


def test_balancing_moves_charge_heats_the_module_and_keeps_the_books() -> None:
    sim = _sim(current=5.0)
    cells = sim.plant.cells
    soc0 = sim.soc.copy()
    bled = np.zeros(TOPO.n_cells)
    ctr = 0
    dt, steps = 0.5, 1200  # 10 minutes, a command every step
    power = 0.0
    for _ in range(steps):
        sim.receive([balancing_command(sim, 0, list(range(0, 12, 2)), ctr)])
        ctr += 1
        voltage = sim.cell_voltages
        sim.step(dt)
        bled += sim.bleed * dt
        power += float((sim.bleed * voltage).sum()) / steps
    charged = 5.0 * dt * steps
    leak = cells.self_discharge_a * dt * steps
    change = cells.charge_c - cells.initial_charge_c
    assert np.all(np.abs(change - (charged - bled - leak)) < 1e-3 * cells.capacity_c)
    assert np.all(bled[0:12:2] > 0.11 * 600 * 0.99) and np.all(bled[1::2] == 0)
    gained = sim.soc - soc0
    assert np.all(gained[0:12:2] < gained[1:12:2].min())  # bled cells gained less
    th = sim.plant.thermal
    g, tau = th.params.conductance_w_per_k, th.time_constant_s
    extra = sim.module_temperatures[0] - sim.module_temperatures[1]
    assert extra == pytest.approx(power / g * (1 - np.exp(-dt * steps / tau)), rel=0.05)


def test_bad_crc_repeated_counter_and_wrong_module_are_ignored() -> None:
    sim = _sim()
    good = balancing_command(sim, 0, [2], 4)
    bad_crc = balancing_command(sim, 0, [3], 5)
    bad_crc.data = bytearray([bad_crc.data[0] ^ 0x01]) + bad_crc.data[1:]
    sim.receive([good, bad_crc])
    sim.step(0.01)
    assert np.flatnonzero(sim.bleed).tolist() == [2]
    sim.receive([balancing_command(sim, 0, [4], 4)])  # same counter: a stale repeat
    sim.receive([balancing_command(sim, 0, [6], 12)])  # jumped by 8: not the next command
    sim.step(0.01)
    assert np.flatnonzero(sim.bleed).tolist() == [2]
    assert sim.modules.balancer.rejected == 3
    sim.receive([balancing_command(sim, 0, [7], 13)])  # consecutive again
    sim.step(0.01)
    assert np.flatnonzero(sim.bleed).tolist() == [7]


def test_balancing_stops_two_seconds_after_the_last_valid_command() -> None:
    sim = _sim()
    frames = _keep_balancing(sim, [0, 1], 3.0)
    assert all(n == 2 for t, n in _balancing_counts(sim, frames) if t > 0.1)
    last_command = 2.5  # commands at 0.0, 0.5, ..., 2.5
    frames = sim.run(3.0)
    counts = _balancing_counts(sim, frames)
    assert all(n == 2 for t, n in counts if t < last_command + 2.0 - 0.011)
    assert all(n == 0 for t, n in counts if t > last_command + 2.0 + 0.011)
    assert not sim.bleed.any()


def test_board_overtemperature_suspends_balancing_and_sets_the_flag() -> None:
    config = SimConfig(modules=ModuleParams(balancing=BalancingParams(overtemp_c=50.0)))
    sim = PackSimulator(TOPO, seed=11, ambient=40.0, config=config)
    frames = _keep_balancing(sim, list(range(12)), 2.0)
    status = [decode(sim, m) for m in frames if m.arbitration_id == 0x300]
    last = status[-1]
    assert last["M00_BalancingOvertemp"] == 1 and last["M00_CellsBalancing"] == 0
    assert not sim.bleed.any()
    # the board cools with the bleeding off: below overtemp - hysteresis it resumes
    assert last["M00_BoardTemperature"] < 50.0


@pytest.mark.parametrize("ohm", [0.0, -3.0])
def test_balancing_params_are_validated(ohm: float) -> None:
    with pytest.raises(ValueError, match="balancing.resistor_ohm"):
        BalancingParams(resistor_ohm=ohm)
