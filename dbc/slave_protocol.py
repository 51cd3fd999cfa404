"""Topology -> slave-bus DBC: the contract between slave modules and the master.

The database is built from cantools objects (not text templates), so every file this
module writes is exactly what cantools itself reads back. Layout, IDs and periods are
described in docs/slave-protocol.md.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

from cantools.database.can import Bus, Database, Message, Node, Signal
from cantools.database.can.formats.dbc import DbcSpecifics
from cantools.database.can.formats.dbc.dbc_attribute import DbcAttribute
from cantools.database.can.formats.dbc.dbc_attribute_definition import DbcAttributeDefinition
from cantools.database.conversion import BaseConversion

from dbc import e2e
from dbc.layout import (
    BALANCING_KIND,
    BALANCING_PERIOD_MS,
    BAUDRATE,
    CELL_VOLTAGES_KIND,
    CELL_VOLTAGES_PERIOD_MS,
    EXTENDED_BASE_ID,
    EXTENDED_MODULE_BITS,
    FD_LENGTHS,
    HEADER_BITS,
    MODULE_STATUS_KIND,
    MODULE_STATUS_PERIOD_MS,
    TEMPERATURES_KIND,
    TEMPERATURES_PERIOD_MS,
    SlotLayout,
    balancing_id,
    cell_layout,
    cell_voltages_id,
    module_status_id,
    sensor_layout,
    slave_node,
    temperatures_id,
)
from dbc.topology import Topology

PROTOCOL_VERSION = "canbms slaves 1"
MASTER = "Master"


def _fd_length(n_bytes: int) -> int:
    return next(length for length in FD_LENGTHS if length >= n_bytes)


def _signal(
    name: str,
    start: int,
    length: int,
    receiver: str,
    comment: str,
    *,
    scale: float = 1,
    signed: bool = False,
    unit: str | None = None,
    mux_id: int | None = None,
    mux_name: str | None = None,
    is_multiplexer: bool = False,
    raw_max: int | None = None,
) -> Signal:
    """A little-endian signal whose min/max is the whole raw range it can carry, or up to
    ``raw_max`` where the protocol never sends the values above."""
    raw_min = -(1 << (length - 1)) if signed else 0
    if raw_max is None:
        raw_max = (1 << (length - 1 if signed else length)) - 1
    conversion = BaseConversion.factory(scale=scale, offset=0)
    return Signal(
        name=name,
        start=start,
        length=length,
        byte_order="little_endian",
        is_signed=signed,
        conversion=conversion,
        minimum=conversion.raw_to_scaled(raw_min),
        maximum=conversion.raw_to_scaled(raw_max),
        unit=unit,
        comment=comment,
        receivers=[receiver],
        is_multiplexer=is_multiplexer,
        multiplexer_ids=None if mux_id is None else [mux_id],
        multiplexer_signal=mux_name,
    )


def _header(message: str, receiver: str, groups: int | None) -> list[Signal]:
    """CRC, alive counter and (for multiplexed messages) the group selector."""
    signals = [
        _signal(
            f"{message}_CRC",
            0,
            8,
            receiver,
            "AUTOSAR E2E Profile 11 CRC (CRC-8 SAE J1850, start 0x00, no final XOR) over the "
            "data ID (low 16 bits of the arbitration ID, low byte first) and bytes 1..DLC-1",
        ),
        _signal(
            f"{message}_Counter",
            8,
            4,
            receiver,
            "Profile 11 alive counter 0..14, +1 modulo 15 per transmission of this ID "
            "(all groups share it)",
            raw_max=e2e.COUNTER_MODULO - 1,
        ),
    ]
    if groups is not None:
        signals.append(
            _signal(
                f"{message}_Mux",
                12,
                4,
                receiver,
                f"Group selector 0..{groups - 1}",
                is_multiplexer=True,
            )
        )
    return signals


def _message(
    frame_id: int,
    name: str,
    length: int,
    signals: list[Signal],
    sender: str,
    period_ms: int,
    comment: str,
    topology: Topology,
) -> Message:
    return Message(
        frame_id=frame_id,
        name=name,
        length=length,
        signals=signals,
        comment=comment,
        senders=[sender],
        send_type="Cyclic",
        cycle_time=period_ms,
        is_extended_frame=topology.extended_ids,
        is_fd=topology.fd,
        strict=True,
        sort_signals=None,
    )


def _balancing_command(topology: Topology, m: int) -> Message:
    name = f"BalancingCommand_M{m:02}"
    node = slave_node(m)
    cells = topology.cells_per_module
    signals = _header(name, node, None)
    signals.append(
        _signal(
            f"M{m:02}_BalanceMask",
            HEADER_BITS,
            cells,
            node,
            f"Bit i = 1: bleed cell i of module {m} (0-based); cleared when the command stops",
        )
    )
    n_bytes = 2 + math.ceil(cells / 8)
    length = _fd_length(n_bytes) if topology.fd else 8
    comment = f"Passive balancing request from the master to module {m}"
    return _message(
        balancing_id(m, topology.extended_ids),
        name,
        length,
        signals,
        MASTER,
        BALANCING_PERIOD_MS,
        comment,
        topology,
    )


def _slot_message(
    topology: Topology,
    m: int,
    kind: str,
    frame_id: int,
    period_ms: int,
    count: int,
    layout: SlotLayout,
) -> Message:
    """CellVoltages or Temperatures: ``count`` slots spread over mux groups."""
    name = f"{kind}_M{m:02}"
    groups = math.ceil(count / layout.per_frame)
    signals = _header(name, MASTER, groups)
    for index in range(count):
        group, slot = divmod(index, layout.per_frame)
        start = layout.start(slot)
        if kind == "CellVoltages":
            value_name = f"M{m:02}_Cell{index:02}_Voltage"
            what = f"Voltage of cell {index} of module {m} (pack cell {m * count + index})"
        else:
            value_name = f"M{m:02}_Temp{index:02}"
            what = f"Temperature sensor {index} of module {m} (pack sensor {m * count + index})"
        signals.append(
            _signal(
                value_name,
                start,
                layout.value_bits,
                MASTER,
                what,
                scale=layout.scale,
                signed=layout.signed,
                unit=layout.unit,
                mux_id=group,
                mux_name=f"{name}_Mux",
            )
        )
        signals.append(
            _signal(
                f"{value_name.removesuffix('_Voltage')}_Invalid",
                start + layout.value_bits,
                1,
                MASTER,
                f"1: the slave could not measure {value_name}; its value must not be used",
                mux_id=group,
                mux_name=f"{name}_Mux",
            )
        )
    length = 64 if topology.fd else 8
    comment = (
        f"{kind} of module {m}: {count} slots, {layout.per_frame} per frame in {groups} "
        f"group(s) selected by {name}_Mux; every group is sent once per period"
    )
    return _message(frame_id, name, length, signals, slave_node(m), period_ms, comment, topology)


def _module_status(topology: Topology, m: int) -> Message:
    name = f"ModuleStatus_M{m:02}"
    p = f"M{m:02}"
    signals = _header(name, MASTER, None)
    signals += [
        _signal(
            f"{p}_ModuleVoltage",
            16,
            16,
            MASTER,
            f"Module {m} stack voltage measured by the slave (independent of the cell sum)",
            scale=0.01,
            unit="V",
        ),
        _signal(
            f"{p}_BoardTemperature",
            32,
            8,
            MASTER,
            f"Slave board temperature of module {m}",
            signed=True,
            unit="degC",
        ),
        _signal(f"{p}_CellsBalancing", 40, 8, MASTER, "Number of cells being bled now"),
        _signal(f"{p}_OpenWire", 48, 1, MASTER, "1: open sense wire detected"),
        _signal(f"{p}_AdcFault", 49, 1, MASTER, "1: measurement ADC fault"),
        _signal(f"{p}_SelfTestFailed", 50, 1, MASTER, "1: slave self-test failed"),
        _signal(
            f"{p}_BalancingOvertemp",
            51,
            1,
            MASTER,
            "1: balancing suspended because the bleed resistors are too hot",
        ),
    ]
    comment = f"Health of module {m}'s slave: module voltage, board temperature, error flags"
    return _message(
        module_status_id(m, topology.extended_ids),
        name,
        8,
        signals,
        slave_node(m),
        MODULE_STATUS_PERIOD_MS,
        comment,
        topology,
    )


def _dbc_specifics(topology: Topology) -> DbcSpecifics:
    """Attribute definitions the DBC needs; cantools fills in per-message values."""
    definitions: OrderedDict[str, DbcAttributeDefinition] = OrderedDict()
    definitions["BusType"] = DbcAttributeDefinition(
        "BusType", default_value="CAN", kind=None, type_name="STRING"
    )
    definitions["GenMsgCycleTime"] = DbcAttributeDefinition(
        "GenMsgCycleTime", default_value=0, kind="BO_", type_name="INT", minimum=0, maximum=65535
    )
    definitions["GenMsgSendType"] = DbcAttributeDefinition(
        "GenMsgSendType",
        default_value="Cyclic",
        kind="BO_",
        type_name="ENUM",
        choices=["Cyclic", "NoMsgSendType"],
    )
    attributes = OrderedDict(
        BusType=DbcAttribute("CAN FD" if topology.fd else "CAN", definitions["BusType"])
    )
    return DbcSpecifics(attributes=attributes, attribute_definitions=definitions)


def _description(topology: Topology) -> str:
    extended = (
        f" 29-bit IDs: 0x{EXTENDED_BASE_ID:X} | kind << {EXTENDED_MODULE_BITS} | module (kind "
        f"{BALANCING_KIND} BalancingCommand, {CELL_VOLTAGES_KIND} CellVoltages, "
        f"{TEMPERATURES_KIND} Temperatures, {MODULE_STATUS_KIND} ModuleStatus); the CRC's "
        "data ID is the low 16 bits of the arbitration ID."
        if topology.extended_ids
        else ""
    )
    return (
        f"canbms slave bus: {topology.describe()}. "
        "End-to-end protection on every frame: AUTOSAR E2E Profile 11 (variant 11A, "
        "data ID mode BOTH). Byte 0 is the CRC-8 SAE J1850 (polynomial 0x1D, start "
        "value 0x00, no final XOR, not reflected) over the data ID (the low 16 bits of "
        "the arbitration ID) as two bytes, low byte first, followed by bytes 1..DLC-1; "
        "bits 8-11 are the alive counter 0..14, incremented by one (modulo 15) per "
        "transmission of that ID. Multiplexed messages send each group once per period."
    ) + extended


def build_database(topology: Topology) -> Database:
    """The slave-bus database for ``topology``, built from cantools objects."""
    messages: list[Message] = []
    for m in range(topology.modules):
        messages.append(_balancing_command(topology, m))
    for m in range(topology.modules):
        messages.append(
            _slot_message(
                topology,
                m,
                "CellVoltages",
                cell_voltages_id(m, topology.extended_ids),
                CELL_VOLTAGES_PERIOD_MS,
                topology.cells_per_module,
                cell_layout(topology),
            )
        )
    for m in range(topology.modules):
        messages.append(
            _slot_message(
                topology,
                m,
                "Temperatures",
                temperatures_id(m, topology.extended_ids),
                TEMPERATURES_PERIOD_MS,
                topology.sensors_per_module,
                sensor_layout(topology),
            )
        )
    for m in range(topology.modules):
        messages.append(_module_status(topology, m))
    nodes = [Node(MASTER, comment="BMS master controller")]
    nodes += [
        Node(slave_node(m), comment=f"Cell monitoring slave of module {m}")
        for m in range(topology.modules)
    ]
    bus = Bus("SlaveBus", comment=_description(topology), baudrate=BAUDRATE)
    return Database(
        messages=messages,
        nodes=nodes,
        buses=[bus],
        version=PROTOCOL_VERSION,
        dbc_specifics=_dbc_specifics(topology),
        # Each message was checked strictly when built; a strict database would check
        # them all again, which doubles the build time of large packs.
        strict=False,
        sort_signals=None,
    )


def dump_string(topology: Topology) -> str:
    """DBC text for ``topology`` with LF line ends (cantools writes CRLF)."""
    text = build_database(topology).as_dbc_string(sort_signals=None, sort_attribute_signals=None)
    return text.replace("\r\n", "\n")


def write_dbc(topology: Topology, path: str | Path) -> Path:
    """Write the DBC for ``topology`` to ``path`` and return the path."""
    target = Path(path)
    target.write_text(dump_string(topology), encoding="utf-8", newline="\n")
    return target
