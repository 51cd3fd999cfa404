"""The example configurations in docs/examples load and build a controller, and every
configuration the project ships passes `canbms config check`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from canbms.cli import main
from controller.config.loader import load_config
from controller.core import Controller
from dbc.slave_protocol import write_dbc
from dbc.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
SHIPPED = [
    *sorted(EXAMPLES.glob("*.toml")),
    *sorted((ROOT / "hil").glob("*.toml")),
    ROOT / "hil" / "matrix" / "bench.toml",
    ROOT / "hil" / "matrix" / "remote.toml",
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_configuration_passes_config_check(tmp_path: Path, path: Path) -> None:
    """The safety pass included: a shipped file never needs an ``unsafe_override``."""
    shutil.copy(path, tmp_path / path.name)
    write_dbc(Topology(1, 16, 4), tmp_path / "canbms_slaves_16x4.dbc")  # docs/examples/pack.toml
    assert main(["config", "check", str(tmp_path / path.name)]) == 0
    assert load_config(tmp_path / path.name).unsafe == ()


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
