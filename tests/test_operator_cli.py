"""What an operator meets first: help texts, refused arguments, bus errors, the demo's
status line, its fault reset and new close, and the plots."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from canbms.cli import build_parser, main
from canbms.cli.demo import StatusLine
from controller.config.loader import merged, parse_config
from controller.core import Controller
from hil.scenarios.session import FAULT_MODULE, Action, DemoSession, _demand, _request, _revive
from hil.series import Series
from slaves.ems import EmsRequest
from slaves.faults import ModuleSilent

CLI = "from canbms.cli import main; raise SystemExit(main())"


def _subcommands(parser):  # noqa: ANN001, ANN202
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for sub in action.choices.values():
            yield sub
            yield from _subcommands(sub)


def test_no_help_text_shows_markup() -> None:
    parser = build_parser()
    for p in (parser, *_subcommands(parser)):
        assert "`" not in p.format_help(), p.prog


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--duration", "-1"],
        ["sim", "--duration", "-5"],
        ["demo", "--duration", "0"],
        ["demo", "--every", "-1"],
        ["replay", "x.blf", "--tolerance", "-0.1"],
    ],
)
def test_negative_or_zero_durations_are_refused(argv: list[str], capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "is not a positive number of seconds" in capsys.readouterr().err


def test_record_refuses_a_format_it_cannot_write(capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit):
        main(["run", "--record", "run.txt"])
    err = capsys.readouterr().err
    assert "run.txt" in err and ".blf" in err and ".asc" in err


def test_sim_bus_error_names_interface_channel_and_cause() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    url = f"ws://127.0.0.1:{port}/"
    done = subprocess.run(
        [sys.executable, "-c", CLI, "sim", "-i", "remote", "-c", url, "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"cannot open the internal bus (remote, channel '{url}'): " in done.stderr
    assert "refused" in done.stderr.lower()
    assert "Namespace" not in done.stderr and "'seed'" not in done.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_is_redrawn_in_place_on_a_terminal_only() -> None:
    terminal = _Terminal()
    line = StatusLine(terminal)
    line.show("t=1 status")
    line.show("t=2 status")
    line.note("t=2 event")
    line.show("t=3 status")
    line.end()
    text = terminal.getvalue()
    assert text.count("\n") == 2, "only the event and the end make new lines"
    assert text.split("\n")[0].endswith("\r\x1b[Kt=2 event")
    assert "\r\x1b[Kt=3 status" in text
    piped = io.StringIO()
    plain = StatusLine(piped)
    plain.show("t=1 status")
    plain.note("t=1 event")
    plain.show("t=2 status")
    plain.end()
    assert piped.getvalue() == "t=1 status\nt=1 event\nt=2 status\n"


LOCKOUT_S = 1.0


def _silence(system, load) -> None:  # noqa: ANN001
    system.faults.inject(ModuleSilent(FAULT_MODULE))


ACTIONS = [
    Action(0.0, "standby with fault reset", _request(EmsRequest.STANDBY, True)),
    Action(0.5, "discharge", _request(EmsRequest.DISCHARGE)),
    Action(1.0, "load", _demand(30.0)),
    Action(3.0, "module silent", _silence, injects_fault=True),
    Action(3.8, "module back", _revive(FAULT_MODULE)),
    # a reset is granted once every cause has been gone for its clear delay (1 s)
    Action(5.5, "reset", _request(EmsRequest.STANDBY, True), resets_fault=True),
    Action(6.0, "discharge again", _request(EmsRequest.DISCHARGE)),
]


@pytest.fixture(scope="module")
def reset_session() -> tuple[DemoSession, Series]:
    text = resources.files("hil").joinpath("demo.toml").read_text(encoding="utf-8")
    data = merged(tomllib.loads(text), {"contactors": {"lockout_s": LOCKOUT_S}})
    series = Series()
    with DemoSession(seed=2, controller=Controller(parse_config(data)), actions=ACTIONS) as run:
        while run.bench.now < 9.0 - 1e-9:
            series.add(run.bench.now, run.step())
    return run, series


def test_session_closes_again_after_the_fault_reset(reset_session) -> None:  # noqa: ANN001
    run, series = reset_session
    m = run.milestones
    assert m.fault_detected is not None and m.contactors_open is not None
    assert m.reclosed is not None and m.fault_reset is not None
    assert m.fault_reset < m.reclosed
    opened = series.contactors.index("FAULT")
    assert "CLOSED_DISCHARGE" in series.contactors[opened:], "closed again after the fault"
    text = "\n".join(run.summary())
    assert f"fault injected                   at t={m.fault_injected:.2f} s" in text
    detected = m.fault_detected - m.fault_injected
    assert f"fault detected                   {detected:.2f} s after injection" in text
    assert f"contactors closed again          at t={m.reclosed:.2f} s" in text


def test_series_marks_the_fault_and_the_reset(reset_session) -> None:  # noqa: ANN001
    run, series = reset_session
    faults = [m for m in series.marks if m.kind == "set" and m.diagnosis == "slave_timeout"]
    assert faults and faults[0].time >= run.milestones.fault_injected
    resets = [m.time for m in series.marks if m.diagnosis == "fault_reset_accepted"]
    m = run.milestones
    assert any(m.fault_reset <= t <= m.reclosed for t in resets), "between request and close"
    spans = series.closed_spans()
    assert [mode for *_, mode in spans] == ["discharge", "discharge"]


def test_plot_draws_the_run(reset_session, tmp_path: Path) -> None:  # noqa: ANN001
    pytest.importorskip("matplotlib", reason="plots need the optional extra canbms[plot]")
    from hil.plot import render

    _, series = reset_session
    out = render(series, tmp_path / "run.png", "reset session")
    head = out.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000, "four panels with lines, not an empty canvas"


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch) -> None:  # noqa: ANN001
    from hil import plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if absent
    with pytest.raises(plot.PlotUnavailable, match=r"canbms\[plot\]"):
        plot.render(Series(), "x.png", "nothing")
