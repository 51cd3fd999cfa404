"""``canbms dbc``: the generated file is the generator's text; show summarises the contract."""

from __future__ import annotations

import cantools
import pytest

import dbc
from canbms.cli import main
from dbc.slave_protocol import dump_string
from dbc.topology import Topology


@pytest.mark.parametrize(
    ("argv", "topology"),
    [
        ([], Topology()),
        (["--modules", "3", "--cells", "7", "--sensors", "5"], Topology(3, 7, 5)),
        (["--modules", "2", "--cells", "64", "--sensors", "33", "--fd"], Topology(2, 64, 33, True)),
    ],
)
def test_generate_writes_the_generator_text(tmp_path, argv, topology):
    target = tmp_path / "slaves.dbc"
    assert main(["dbc", "generate", *argv, "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == dump_string(topology)
    assert len(cantools.database.load_file(target, strict=True).messages) == 4 * topology.modules


def test_generate_to_stdout(capsys):
    assert main(["dbc", "generate", "--modules", "1"]) == 0
    assert capsys.readouterr().out == dump_string(Topology(modules=1))


def test_generate_rejects_an_impossible_topology_naming_the_field(tmp_path, capsys):
    target = tmp_path / "x.dbc"
    assert main(["dbc", "generate", "--cells", "49", "-o", str(target)]) == 1
    assert "cells_per_module" in capsys.readouterr().err
    assert not target.exists()


def test_show_lists_every_message_with_id_dlc_period_and_signal_count(capsys):
    assert main(["dbc", "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {
        line.split()[0]: line.split()
        for line in lines
        if line.startswith(("Bal", "Cell", "Temp", "Mod"))
    }
    assert len(rows) == 32
    assert rows["CellVoltages_M07"][1:6] == ["0x207", "8", "100", "ms", "4"]
    assert rows["CellVoltages_M07"][6] == str(3 + 2 * 12)
    assert rows["Temperatures_M00"][1:6] == ["0x280", "8", "1000", "ms", "2"]
    assert rows["BalancingCommand_M03"][1:5] == ["0x143", "8", "500", "ms"]
    # per module: 4 voltage groups x 10/s + status 10/s + 2 temperature groups x 1/s + 2/s
    assert "32 messages, 432 frames/s" in lines[-1]


def test_show_summarises_a_file(capsys):
    assert main(["dbc", "show", "--file", str(dbc.path("canbms_slaves_fd.dbc"))]) == 0
    out = capsys.readouterr().out
    assert "CellVoltages_M15" in out and " 64 " in out
    assert "64 messages" in out.splitlines()[-1]
