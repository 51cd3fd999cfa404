"""The battery node's object dictionary, built in code (CiA 301 communication, CiA 418 profile).

Units of the profile objects (raw integer x factor = physical value):

| object | type | unit | content |
|---|---|---|---|
| 6000h battery status | u8 | bits | see ``values.StatusBit`` |
| 6010h temperature | i16 | 1/8 degC | hottest cell temperature |
| 6020h battery parameters | record | | see below |
| 6060h battery voltage | u32 | 1/1024 V | pack voltage |
| 6070h charge current requested | u16 | 1/16 A | what the charger may deliver now |
| 6081h state of charge | u8 | 1 % | 0xFF while the SOC is unknown |

6020h: sub 1 battery type (u8), 2 capacity (u16, 1 Ah), 3 maximum charge current (u16,
1/16 A), 4 cells in series (u16).

The 1/8 degC temperature resolution and the 1/16 A of 6020h sub 3 follow common CiA 418
implementations; the profile text itself is not among our references, so check them
against the charger's EDS. The manufacturer area (2000h-2005h read-only live values,
2100h read-write parameters, 2101h fault reset) is described where it is built below.

Default TPDO mapping (COB-IDs relative to the node ID, periods from 1800h+n sub 5):
TPDO1 0x180+id = 6010h + 6000h (3 bytes), TPDO2 0x280+id = 6060h (4 bytes),
TPDO3 0x380+id = 6070h + 6081h (3 bytes). Heartbeat 0x700+id, SDO 0x600+id / 0x580+id.
"""

from __future__ import annotations

from canopen.objectdictionary import ObjectDictionary, ODRecord, ODVariable, datatypes

from controller.canopen_node.config import BatteryNodeConfig

DEVICE_PROFILE = 418
DEVICE_NAME = "canbms"

# (index, subindex) of the objects the node writes or reads at run time.
ERROR_REGISTER = (0x1001, 0)
HEARTBEAT_TIME = (0x1017, 0)
CONSUMER_HEARTBEAT = (0x1016, 1)  # node ID << 16 | time in ms (0: none)
COMMUNICATION_AREA = range(0x1000, 0x2000)  # CiA 301 communication profile objects
BATTERY_STATUS = (0x6000, 0)
TEMPERATURE = (0x6010, 0)
BATTERY_TYPE = (0x6020, 1)
CAPACITY = (0x6020, 2)
MAX_CHARGE_CURRENT = (0x6020, 3)
CELL_COUNT = (0x6020, 4)
VOLTAGE = (0x6060, 0)
CHARGE_CURRENT_REQUEST = (0x6070, 0)
SOC = (0x6081, 0)
MIN_CELL_VOLTAGE = (0x2000, 1)
MAX_CELL_VOLTAGE = (0x2000, 2)
MIN_CELL_POSITION = (0x2000, 3)
MAX_CELL_POSITION = (0x2000, 4)
MIN_TEMPERATURE = (0x2001, 1)
MAX_TEMPERATURE = (0x2001, 2)
MEAN_TEMPERATURE = (0x2001, 3)
CCL = (0x2002, 1)
DCL = (0x2002, 2)
CVL = (0x2002, 3)
DVL = (0x2002, 4)
PACK_CURRENT = (0x2002, 5)
BMS_STATE = (0x2003, 0)
FAULT_LEVEL = (0x2004, 0)
ACTIVE_FAULTS = (0x2005, 0)
REQUEST_SCALE = (0x2100, 1)
REQUEST_CAP = (0x2100, 2)
FAULT_RESET = (0x2101, 0)
SOC_NOT_AVAILABLE = 0xFF  # 6081h while the SOC is unknown (valid values are 0..100)

TPDO_COMMUNICATION = (0x1800, 0x1801, 0x1802)
# TPDO n: (COB-ID base, mapped (index, subindex, bits) in frame order)
TPDO_LAYOUT = (
    (0x180, ((0x6010, 0, 16), (0x6000, 0, 8))),
    (0x280, ((0x6060, 0, 32),)),
    (0x380, ((0x6070, 0, 16), (0x6081, 0, 8))),
)

_U8, _U16, _U32 = datatypes.UNSIGNED8, datatypes.UNSIGNED16, datatypes.UNSIGNED32
_I16 = datatypes.INTEGER16


def _var(
    name: str,
    index: int,
    subindex: int,
    data_type: int,
    access: str,
    default: int | str | None = None,
    *,
    pdo: bool = False,
    factor: float = 1,
    unit: str = "",
    limits: tuple[int, int] | None = None,
    node_offset: int | None = None,
    node_id: int = 0,
    description: str = "",
) -> ODVariable:
    """One entry; ``node_offset`` makes the default ``$NODEID+offset`` as CiA 306 writes COB-IDs."""
    var = ODVariable(name, index, subindex)
    var.data_type = data_type
    var.access_type = access
    var.pdo_mappable = pdo
    var.factor = factor
    var.unit = unit
    var.description = description
    if limits is not None:
        var.min, var.max = limits
    if node_offset is not None:
        var.default = node_offset + node_id
        var.default_raw = f"$NODEID+0x{node_offset:X}"
        var.relative = True
    else:
        var.default = default
    return var


def _record(name: str, index: int, entries: list[ODVariable]) -> ODRecord:
    """A record with its sub 0 ("highest sub-index supported") filled in."""
    record = ODRecord(name, index)
    highest = max(e.subindex for e in entries)
    record.add_member(_var("Highest sub-index supported", index, 0, _U8, "const", highest))
    for entry in entries:
        record.add_member(entry)
    return record


def _communication(od: ObjectDictionary, config: BatteryNodeConfig) -> None:
    nid = config.node_id
    od.add_object(_var("Device type", 0x1000, 0, _U32, "const", DEVICE_PROFILE))
    od.add_object(_var("Error register", *ERROR_REGISTER, _U8, "ro", pdo=True))
    od.add_object(
        _var("Manufacturer device name", 0x1008, 0, datatypes.VISIBLE_STRING, "const", DEVICE_NAME)
    )
    od.add_object(
        _var(
            "Producer heartbeat time",
            *HEARTBEAT_TIME,
            _U16,
            "rw",
            config.heartbeat_ms,
            unit="ms",
            limits=(0, 0xFFFF),
        )
    )
    od.add_object(
        _record(
            "Consumer heartbeat time",
            0x1016,
            [
                _var(
                    "Consumer heartbeat time 1",
                    *CONSUMER_HEARTBEAT,
                    _U32,
                    "rw",
                    config.charger_node_id << 16 | config.charger_heartbeat_ms
                    if config.charger_node_id
                    else 0,
                )
            ],
        )
    )
    identity = [
        ("Vendor-ID", config.vendor_id),
        ("Product code", config.product_code),
        ("Revision number", config.revision),
        ("Serial number", config.serial_number),
    ]
    od.add_object(
        _record(
            "Identity object",
            0x1018,
            [_var(n, 0x1018, i, _U32, "const", v) for i, (n, v) in enumerate(identity, 1)],
        )
    )
    od.add_object(
        _record(
            "SDO server parameter",
            0x1200,
            [
                _var(
                    "COB-ID client to server",
                    0x1200,
                    1,
                    _U32,
                    "const",
                    node_offset=0x600,
                    node_id=nid,
                ),
                _var(
                    "COB-ID server to client",
                    0x1200,
                    2,
                    _U32,
                    "const",
                    node_offset=0x580,
                    node_id=nid,
                ),
            ],
        )
    )
    periods = (config.tpdo1_ms, config.tpdo2_ms, config.tpdo3_ms)
    for n, ((cob_base, mapped), period) in enumerate(zip(TPDO_LAYOUT, periods, strict=True)):
        com, mapping = 0x1800 + n, 0x1A00 + n
        od.add_object(
            _record(
                f"TPDO{n + 1} communication parameter",
                com,
                [
                    # bit 31 set disables the PDO; writable so a tool can move or silence it
                    _var(
                        "COB-ID used by TPDO", com, 1, _U32, "rw", node_offset=cob_base, node_id=nid
                    ),
                    # 254: event-driven, manufacturer-specific: here, the event timer
                    _var("Transmission type", com, 2, _U8, "ro", 254),
                    _var("Inhibit time", com, 3, _U16, "ro", 0, unit="100 us"),
                    _var("Event timer", com, 5, _U16, "rw", period, unit="ms", limits=(0, 0xFFFF)),
                ],
            )
        )
        od.add_object(
            _record(
                f"TPDO{n + 1} mapping parameter",
                mapping,
                [
                    _var(
                        f"Mapped object {i}", mapping, i, _U32, "const", idx << 16 | sub << 8 | bits
                    )
                    for i, (idx, sub, bits) in enumerate(mapped, 1)
                ],
            )
        )


def _profile(od: ObjectDictionary, config: BatteryNodeConfig) -> None:
    """CiA 418 objects; live values have no default: until the first update they read as
    "resource not available" rather than a plausible-looking zero."""
    od.add_object(_var("Battery status", *BATTERY_STATUS, _U8, "ro", pdo=True))
    od.add_object(
        _var("Temperature", *TEMPERATURE, _I16, "ro", pdo=True, factor=0.125, unit="degC")
    )
    od.add_object(
        _record(
            "Battery parameters",
            0x6020,
            [
                _var("Battery type", *BATTERY_TYPE, _U8, "const", config.battery_type),
                _var("Ah capacity", *CAPACITY, _U16, "ro", unit="Ah"),
                _var(
                    "Maximum charge current",
                    *MAX_CHARGE_CURRENT,
                    _U16,
                    "const",
                    round(config.rated_charge_current_a * 16),
                    factor=1 / 16,
                    unit="A",
                ),
                _var("Number of cells", *CELL_COUNT, _U16, "ro"),
            ],
        )
    )
    od.add_object(
        _var("Battery voltage", *VOLTAGE, _U32, "ro", pdo=True, factor=1 / 1024, unit="V")
    )
    od.add_object(
        _var(
            "Charge current requested",
            *CHARGE_CURRENT_REQUEST,
            _U16,
            "ro",
            pdo=True,
            factor=1 / 16,
            unit="A",
        )
    )
    od.add_object(_var("Battery state of charge", *SOC, _U8, "ro", pdo=True, unit="%"))


def _manufacturer(od: ObjectDictionary, config: BatteryNodeConfig) -> None:
    """Read-only live values (2000h-2005h) and read-write parameters (2100h).

    Unavailable measurements read as the type's maximum (0xFFFF, 0x7FFF): a service tool
    sees "no value" instead of a plausible number.
    """
    mv = {"factor": 0.001, "unit": "V"}
    od.add_object(
        _record(
            "Cell voltage extremes",
            0x2000,
            [
                _var("Minimum cell voltage", *MIN_CELL_VOLTAGE, _U16, "ro", pdo=True, **mv),
                _var("Maximum cell voltage", *MAX_CELL_VOLTAGE, _U16, "ro", pdo=True, **mv),
                _var("Minimum cell position", *MIN_CELL_POSITION, _U16, "ro"),
                _var("Maximum cell position", *MAX_CELL_POSITION, _U16, "ro"),
            ],
        )
    )
    dc = {"factor": 0.1, "unit": "degC"}
    od.add_object(
        _record(
            "Temperatures",
            0x2001,
            [
                _var("Minimum temperature", *MIN_TEMPERATURE, _I16, "ro", pdo=True, **dc),
                _var("Maximum temperature", *MAX_TEMPERATURE, _I16, "ro", pdo=True, **dc),
                _var("Mean temperature", *MEAN_TEMPERATURE, _I16, "ro", pdo=True, **dc),
            ],
        )
    )
    amp, volt = {"factor": 0.1, "unit": "A"}, {"factor": 0.1, "unit": "V"}
    od.add_object(
        _record(
            "Limits",
            0x2002,
            [
                _var("Charge current limit", *CCL, _U16, "ro", pdo=True, **amp),
                _var("Discharge current limit", *DCL, _U16, "ro", pdo=True, **amp),
                _var("Charge voltage limit", *CVL, _U16, "ro", pdo=True, **volt),
                _var("Discharge voltage limit", *DVL, _U16, "ro", pdo=True, **volt),
                _var("Pack current", *PACK_CURRENT, _I16, "ro", pdo=True, **amp),
            ],
        )
    )
    od.add_object(_var("BMS state", *BMS_STATE, _U8, "ro", pdo=True, description="as BMS_State"))
    od.add_object(
        _var("Fault level", *FAULT_LEVEL, _U8, "ro", pdo=True, description="0 ok .. 3 fault")
    )
    od.add_object(
        _var(
            "Active faults",
            *ACTIVE_FAULTS,
            _U32,
            "ro",
            pdo=True,
            description="bits as BMS_ActiveFaults; bit 31 any other check",
        )
    )
    od.add_object(
        _var(
            "Fault reset",
            *FAULT_RESET,
            _U8,
            "rw",
            0,
            limits=(0, 1),
            description="write 1 to request a fault reset; reads 0 once the BMS took it over",
        )
    )
    od.add_object(
        _record(
            "Charge request parameters",
            0x2100,
            [
                _var(
                    "Charge current scale",
                    *REQUEST_SCALE,
                    _U8,
                    "rw",
                    config.charge_current_scale_pct,
                    unit="%",
                    limits=(0, 100),
                ),
                _var(
                    "Charge current request cap",
                    *REQUEST_CAP,
                    _U16,
                    "rw",
                    round(config.rated_charge_current_a * 16),
                    factor=1 / 16,
                    unit="A",
                    limits=(0, 0xFFFF),
                ),
            ],
        )
    )


def build_dictionary(config: BatteryNodeConfig) -> ObjectDictionary:
    """The complete object dictionary of a battery node with ``config``'s start-up values."""
    od = ObjectDictionary()
    od.node_id = config.node_id
    info = od.device_information
    info.vendor_name = "canbms"
    info.vendor_number = config.vendor_id
    info.product_name = "canbms battery management system"
    info.product_number = config.product_code
    info.revision_number = config.revision
    info.nr_of_RXPDO = 0
    info.nr_of_TXPDO = len(TPDO_LAYOUT)
    info.simple_boot_up_slave = True
    info.allowed_baudrates = {125_000, 250_000, 500_000}
    _communication(od, config)
    _profile(od, config)
    _manufacturer(od, config)
    return od
