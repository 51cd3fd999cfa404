"""The example configurations in docs/examples load and build a controller."""

from __future__ import annotations

import shutil
from pathlib import Path

from controller.config.loader import load_config
from controller.core import Controller
from dbc.slave_protocol import write_dbc
from dbc.topology import Topology

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def test_remote_example_names_both_buses() -> None:
    config = load_config(EXAMPLES / "remote.toml")
    assert {b.interface for b in config.buses.values()} == {"remote"}
    assert config.buses["internal"].channel != config.buses["vehicle"].channel


def test_storage_pack_example_builds_a_controller(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "pack.toml", tmp_path / "pack.toml")
    write_dbc(Topology(1, 16, 4), tmp_path / "canbms_slaves_16x4.dbc")
    config = load_config(tmp_path / "pack.toml")
    assert config.pack.cells == 16 and config.limits.cells_in_series == 16
    assert config.canopen is not None and len(config.adapters) == 1
    controller = Controller(config)
    assert controller.initial_state().bleed.shape == (16,)
