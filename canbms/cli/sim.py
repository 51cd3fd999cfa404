"""``canbms sim``: run the simulated pack in real time on CAN buses.

By default only the slave modules, on one bus; ``--system`` adds the HV side (contactors,
DC link), the IVT-S current sensor and the contactor driver on that bus, and the EMS on a
second, vehicle bus.
"""

from __future__ import annotations

import argparse
import contextlib

import can
import can.cli

from canbms.cli.options import seconds
from dbc.errors import BusError
from dbc.topology import Topology
from hil.recording import add_record_arguments, start_recording
from slaves.chemistry import CHEMISTRIES
from slaves.ems import EmsCommand, EmsRequest
from slaves.hv_circuit import ContactorId
from slaves.realtime import RealtimeRunner, RealtimeStats
from slaves.simulator import PackSimulator
from slaves.system import INTERNAL, VEHICLE, SimulatedSystem

DEFAULT_INTERFACE = "virtual"
DEFAULT_VIRTUAL_CHANNEL = "slaves"
DEFAULT_VEHICLE_CHANNEL = "vehicle"


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="simulate the slave modules of a pack on a CAN bus",
        description=(
            "Simulate a battery pack and its slave modules in real time: cell voltage, "
            "temperature and module status frames per the slave DBC, obeying balancing "
            "commands. Defaults to python-can's in-process 'virtual' interface on channel "
            f"'{DEFAULT_VIRTUAL_CHANNEL}'; --fd selects the CAN FD bus and slave layout. "
            "With --system the same bus also carries the current sensor and the contactor "
            "driver of a simulated HV side, and the EMS talks on the vehicle bus (virtual "
            f"channel '{DEFAULT_VEHICLE_CHANNEL}' by default)."
        ),
    )
    can.cli.add_bus_arguments(parser, group_title="internal bus (slave modules)")
    can.cli.add_bus_arguments(parser, prefix="vehicle", group_title="vehicle bus (--system)")
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
    system = parser.add_argument_group("system")
    system.add_argument(
        "--system",
        action="store_true",
        help="simulate the whole plant: HV side, current sensor, contactor driver, EMS",
    )
    system.add_argument(
        "--load",
        type=float,
        default=0.0,
        help="current the load draws from the DC link in A, + discharges (default 0)",
    )
    system.add_argument(
        "--request",
        action="append",
        type=_ems_command,
        default=[],
        metavar="STATE[@SECONDS]",
        help="EMS state request (standby, discharge, charge) from a time on (default 0 s), or "
        "reset: standby with the fault-reset bit for 1 s; repeat for a script. Without it the "
        "EMS requests standby",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--duration", type=seconds, default=None, help="seconds to run (default: until Ctrl-C)"
    )
    run.add_argument("--step", type=seconds, default=0.01, help="simulation step in s")
    run.add_argument("--quiet", action="store_true", help="no status line per second")
    add_record_arguments(parser)
    parser.set_defaults(func=run_sim)


RESET_PULSE_S = 1.0  # how long ``reset@T`` holds the fault-reset bit


def _ems_command(text: str) -> tuple[EmsCommand, ...]:
    state, _, at = text.partition("@")
    try:
        at_s = float(at) if at else 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"{at!r} is not a time in seconds") from None
    if state.strip().lower() == "reset":
        return (
            EmsCommand(at_s, EmsRequest.STANDBY, fault_reset=True),
            EmsCommand(at_s + RESET_PULSE_S, EmsRequest.STANDBY),
        )
    try:
        request = EmsRequest[state.strip().upper()]
    except KeyError:
        names = ", ".join([*(r.name.lower() for r in EmsRequest), "reset"])
        raise argparse.ArgumentTypeError(f"{state!r} is not one of {names}") from None
    return (EmsCommand(at_s, request),)


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


def _system_line(system: SimulatedSystem, stats: RealtimeStats) -> str:
    closed = "".join(
        name if system.circuit.contactors[cid].closed else "-"
        for cid, name in (
            (ContactorId.MINUS, "M"),
            (ContactorId.PRECHARGE, "P"),
            (ContactorId.PLUS, "+"),
        )
    )
    request = system.ems.command_at(system.t).request.name.lower()
    return (
        f"{_status_line(system.pack, stats)}  link {system.link_voltage:7.2f} V  "
        f"contactors {closed}  EMS {request}"
    )


def _default_virtual(args: argparse.Namespace, prefix: str, channel: str) -> None:
    """python-can leaves options that were not given out of the namespace."""
    interface, channel_key = f"{prefix}interface", f"{prefix}channel"
    if getattr(args, interface, None) is None:
        setattr(args, interface, DEFAULT_INTERFACE)
    if getattr(args, interface) == DEFAULT_INTERFACE and getattr(args, channel_key, None) is None:
        setattr(args, channel_key, channel)


def _open_bus(args: argparse.Namespace, prefix: str, role: str) -> can.BusABC:
    """The bus of ``role`` from the options; a failure names the interface, the channel and
    the cause (python-can's own message lists every option given)."""
    key = f"{prefix}_" if prefix else ""
    interface, channel = getattr(args, f"{key}interface"), getattr(args, f"{key}channel", None)
    try:
        return can.cli.create_bus_from_namespace(args, prefix=prefix or None)
    except argparse.ArgumentError as exc:  # python-can wraps the cause in this
        cause = exc.__cause__ or exc
        raise BusError(
            f"cannot open the {role} bus ({interface}, channel {channel!r}): {cause}"
        ) from exc


def run_sim(args: argparse.Namespace) -> int:
    if not 0.0 <= args.soc <= 100.0:
        raise ValueError(f"--soc: {args.soc} is not in 0..100")
    if not args.system and (args.load or args.request):
        raise ValueError("--load and --request need --system")
    if args.system and args.current:
        raise ValueError("--current sets the pack current of the pack-only mode; use --load")
    topology = Topology(args.modules, args.cells, args.sensors, bool(getattr(args, "fd", False)))
    plant = dict(
        topology=topology,
        chemistry=args.chemistry,
        seed=args.seed,
        initial_soc=args.soc / 100.0,
        ambient=args.ambient,
    )
    _default_virtual(args, "", DEFAULT_VIRTUAL_CHANNEL)
    if args.system:
        sim: PackSimulator | SimulatedSystem = SimulatedSystem(
            **plant, load=args.load, ems_script=[c for entry in args.request for c in entry]
        )
        _default_virtual(args, "vehicle_", DEFAULT_VEHICLE_CHANNEL)
        line = _system_line
    else:
        sim = PackSimulator(**plant, current=args.current)
        line = _status_line
    chemistry = sim.pack.chemistry if isinstance(sim, SimulatedSystem) else sim.chemistry
    on_second = None if args.quiet else lambda s, st: print(line(s, st), flush=True)
    mode = ", HV side, current sensor, contactor driver, EMS" if args.system else ""
    print(f"canbms sim: {topology.describe()}, {chemistry.name}{mode}", flush=True)
    roles = (INTERNAL, VEHICLE) if args.system else (INTERNAL,)
    with contextlib.ExitStack() as stack:
        say = lambda line: print(f"canbms sim: {line.strip()}", flush=True)  # noqa: E731
        recording = start_recording(args, roles, say=say)
        stack.callback(recording.close)  # after the buses have closed
        buses = {}
        for role, prefix in zip(roles, ("", "vehicle"), strict=False):
            bus = recording.wrap(role, _open_bus(args, prefix, role))
            buses[role] = stack.enter_context(bus)
            print(f"canbms sim: {role} bus on {bus.channel_info}", flush=True)
        runner = RealtimeRunner(sim, buses, step=args.step, on_second=on_second)
        runner.install_signal_handlers()
        stats = runner.run(args.duration)
    print(
        f"canbms sim: stopped at t={sim.t:.2f} s, {stats.frames_sent} frames sent, "
        f"{stats.frames_received} received, {stats.send_errors} send errors, "
        f"max lag {stats.max_lag_s * 1e3:.1f} ms",
        flush=True,
    )
    return 0
