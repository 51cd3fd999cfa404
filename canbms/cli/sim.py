"""``canbms sim``: run the simulated pack (slave modules) in real time on a CAN bus."""

from __future__ import annotations

import argparse

import can
import can.cli

from dbc.topology import Topology
from slaves.chemistry import CHEMISTRIES
from slaves.realtime import RealtimeRunner, RealtimeStats
from slaves.simulator import PackSimulator

DEFAULT_INTERFACE = "virtual"
DEFAULT_VIRTUAL_CHANNEL = "slaves"


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="simulate the slave modules of a pack on a CAN bus",
        description=(
            "Simulate a battery pack and its slave modules in real time: cell voltage, "
            "temperature and module status frames per the slave DBC, obeying balancing "
            "commands. Defaults to python-can's in-process 'virtual' interface on channel "
            f"'{DEFAULT_VIRTUAL_CHANNEL}'; --fd selects the CAN FD bus and slave layout."
        ),
    )
    can.cli.add_bus_arguments(parser)
    pack = parser.add_argument_group("pack")
    pack.add_argument("--modules", type=int, default=8, help="slave modules (default 8)")
    pack.add_argument("--cells", type=int, default=12, help="cells per module (default 12)")
    pack.add_argument("--sensors", type=int, default=4, help="sensors per module (default 4)")
    pack.add_argument(
        "--chemistry", choices=sorted(CHEMISTRIES), default="NMC", help="cell chemistry"
    )
    pack.add_argument("--seed", type=int, default=0, help="seed of spreads and noise")
    pack.add_argument("--soc", type=float, default=50.0, help="initial SOC in %% (default 50)")
    pack.add_argument(
        "--current", type=float, default=0.0, help="pack current in A, + charges (default 0)"
    )
    pack.add_argument("--ambient", type=float, default=25.0, help="ambient in degC")
    run = parser.add_argument_group("run")
    run.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)"
    )
    run.add_argument("--step", type=float, default=0.01, help="simulation step in s")
    run.add_argument("--quiet", action="store_true", help="no status line per second")
    parser.set_defaults(func=run_sim)


def _status_line(sim: PackSimulator, stats: RealtimeStats) -> str:
    v = sim.cell_voltages
    temps = sim.sensor_temperatures
    balancing = int(sim.modules.balancer.active.sum())
    return (
        f"t={sim.t:8.1f} s  I={sim.pack_current:+7.1f} A  pack {sim.pack_voltage:7.2f} V  "
        f"SOC {100 * sim.soc.mean():5.1f} %  cells {v.min():.3f}..{v.max():.3f} V  "
        f"T {temps.min():5.1f}..{temps.max():5.1f} degC  balancing {balancing}  "
        f"tx {stats.frames_sent} rx {stats.frames_received}"
    )


def run_sim(args: argparse.Namespace) -> int:
    if not 0.0 <= args.soc <= 100.0:
        raise ValueError(f"--soc: {args.soc} is not in 0..100")
    topology = Topology(args.modules, args.cells, args.sensors, bool(getattr(args, "fd", False)))
    sim = PackSimulator(
        topology,
        chemistry=args.chemistry,
        seed=args.seed,
        initial_soc=args.soc / 100.0,
        ambient=args.ambient,
        current=args.current,
    )
    # python-can leaves options that were not given out of the namespace
    if getattr(args, "interface", None) is None:
        args.interface = DEFAULT_INTERFACE
    if args.interface == DEFAULT_INTERFACE and getattr(args, "channel", None) is None:
        args.channel = DEFAULT_VIRTUAL_CHANNEL
    on_second = None if args.quiet else lambda s, st: print(_status_line(s, st), flush=True)
    print(f"canbms sim: {topology.describe()}, {sim.chemistry.name}", flush=True)
    with can.cli.create_bus_from_namespace(args) as bus:
        print(f"canbms sim: on {bus.channel_info}", flush=True)
        runner = RealtimeRunner(sim, bus, step=args.step, on_second=on_second)
        runner.install_signal_handlers()
        stats = runner.run(args.duration)
    print(
        f"canbms sim: stopped at t={sim.t:.2f} s, {stats.frames_sent} frames sent, "
        f"{stats.frames_received} received, {stats.send_errors} send errors, "
        f"max lag {stats.max_lag_s * 1e3:.1f} ms",
        flush=True,
    )
    return 0
