"""Safety validation against the databases: the pack and the E2E checks match the DBCs.

Runs once the assembly has loaded the DBCs (`controller.core.Controller`), after its
decoders compiled, so that a mapping that cannot be compiled fails first with its own error.
A refusal names the key (`controller.config.safety.Refusal`) and ``unsafe_override`` may
accept it, as for the configuration pass.

- ``pack.fd`` must say what the slave DBC carries (CAN FD frames or classic ones).
- The pack must hold everything the slave DBC describes: a signal a mapping rule places
  beyond the end of its measured array (six modules configured for an eight-module DBC) is a
  cell nobody would judge. Rules with an index signal are judged frame by frame instead.
- Every received message a mapping reads that carries an alive counter, or a CRC in the
  profile's place (unsigned byte 0), is checked by an ``[[e2e]]`` entry, and every ``[[e2e]]``
  entry matches a message of its bus: a pattern that matches nothing turns the checks off.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cantools.database import Database
from cantools.database.can import Message, Signal

from controller.config.ingest import MODULE_ARRAYS, bus_subset, bus_targets, merge_mappings
from controller.config.safety import DATABASE_KEYS, Refusal, accept
from controller.ingest import MappingConfig, load_mapping
from controller.ingest.mapping import E2ERule, Rule
from controller.ingest.selection import select_messages

if TYPE_CHECKING:
    from controller.config.loader import ControllerConfig

CRC_NAME = re.compile(r"crc|checksum|chksum", re.IGNORECASE)
COUNTER_NAME = re.compile(r"counter|alive|msgcount|msgcnt|rolling", re.IGNORECASE)
PER_MODULE = {"cell_voltage": "cells_per_module", "cell_temperature": "sensors_per_module"}


@dataclass(frozen=True)
class _Mapping:
    key: str  # the configuration key that selects it
    config: MappingConfig


def check_databases(
    config: ControllerConfig, dbs: Mapping[str, Database | None]
) -> tuple[Refusal, ...]:
    """Judge the pack and the mappings against the loaded DBCs of each role."""
    return accept(
        database_refusals(config, dbs), config.unsafe_override, lambda k: k in DATABASE_KEYS
    )


def database_refusals(
    config: ControllerConfig, dbs: Mapping[str, Database | None]
) -> list[Refusal]:
    pack = config.pack
    params = {
        "cells_per_module": pack.cells_per_module,
        "sensors_per_module": pack.sensors_per_module,
    }
    mappings = (
        _Mapping("ingest.slave_mapping", load_mapping(config.ingest.slave_mapping, params)),
        _Mapping("ingest.sensor_mapping", load_mapping(config.ingest.sensor_mapping, params)),
        _Mapping("dbc.master", load_mapping("contactor_driver", params)),
    )
    master = dbs["master"]
    internal = {"slaves": dbs["slaves"], "sensor": dbs["sensor"]}
    internal["master"] = bus_subset(master, "internal") if master is not None else None
    labelled = {role: db for role, db in internal.items() if db is not None}
    every = [m for db in labelled.values() for m in db.messages]
    merged = merge_mappings(*(m.config for m in mappings))
    decoded = select_messages(labelled, merged, config.dbc.provides).messages
    slaves = dbs["slaves"]
    return [
        *(_fd(config, slaves) if slaves is not None else ()),
        *_described(config, decoded, mappings),
        *_e2e(decoded, every, mappings),
    ]


def _fd(config: ControllerConfig, slaves: Database) -> Iterator[Refusal]:
    fd = any(m.is_fd or m.length > 8 for m in slaves.messages)
    if fd != config.pack.fd:
        kind = "CAN FD" if fd else "classic CAN"
        yield Refusal(
            "pack.fd",
            f"{str(config.pack.fd).lower()}, but the slave DBC describes {kind} frames",
        )


def _selects(rule: Rule, message: Message, signal: Signal) -> dict[str, str] | None:
    """The named groups when ``rule`` reads ``signal`` of ``message``, as the decoder does."""
    groups: dict[str, str] = {}
    if rule.message is not None:
        found = rule.message.fullmatch(message.name)
        if found is None:
            return None
        groups.update(found.groupdict())
    found = rule.signal.fullmatch(signal.name)
    if found is None:
        return None
    return {**groups, **found.groupdict()}


def _readers(
    message: Message, mappings: Sequence[_Mapping]
) -> Iterator[tuple[_Mapping, Rule, Signal, dict[str, str]]]:
    """Each signal of ``message`` some rule reads, with the first such rule (as decoded)."""
    rules = [
        (m, r)
        for m in mappings
        for r in m.config.rules
        if r.message is None or r.message.fullmatch(message.name)
    ]
    for signal in message.signals:
        for mapping, rule in rules:
            groups = _selects(rule, message, signal)
            if groups is not None:
                yield mapping, rule, signal, groups
                break


def _element(rule: Rule, groups: Mapping[str, str]) -> int | None:
    """The element a signal feeds; None when an index signal moves it frame by frame."""
    if rule.index_signal is not None:
        return None
    numbers = [groups.get(name) or "0" for name in ("module", "index")]
    if not all(n.isdigit() for n in numbers):
        return None  # refused by the decoder already
    return rule.offset + int(numbers[0]) * rule.per_module + int(numbers[1])


def _described(
    config: ControllerConfig, messages: Sequence[Message], mappings: Sequence[_Mapping]
) -> Iterator[Refusal]:
    """Signals a rule places beyond the end of their array: cells the pack leaves out."""
    sizes = bus_targets(config.pack)["internal"]
    beyond: dict[str, int] = {}
    for message in messages:
        for _, rule, _, groups in _readers(message, mappings):
            element = _element(rule, groups)
            size = sizes.get(rule.target)
            if element is not None and size is not None and element >= size:
                beyond[rule.target] = max(beyond.get(rule.target, 0), element + 1)
    pack = config.pack
    found: dict[str, list[str]] = {}  # key -> what the DBCs describe beyond the pack
    for target, described in beyond.items():
        key, shape = "pack.modules", f"{pack.modules} modules"
        if target in PER_MODULE:
            per_module = getattr(pack, PER_MODULE[target])
            shape += f" x {per_module}"
            if described % per_module:
                key = f"pack.{PER_MODULE[target]}"
        elif target not in MODULE_ARRAYS:
            key, shape = "ingest.sensor_mapping", "one"
        found.setdefault(key, []).append(f"{described} {target} for {sizes[target]} ({shape})")
    for key, texts in found.items():
        more = f" and {len(texts) - 2} more arrays" if len(texts) > 2 else ""
        yield Refusal(
            key,
            f"the DBCs describe {', '.join(texts[:2])}{more}: the elements beyond the pack "
            "would never be judged",
        )


def _e2e_signals(message: Message) -> tuple[Signal | None, Signal | None]:
    """The CRC (unsigned byte 0, the profile's place) and alive counter a message carries."""
    crc = counter = None
    for s in message.signals:
        if s.multiplexer_ids or s.is_multiplexer or s.is_signed or s.is_float:
            continue
        at_byte_0 = s.length == 8 and s.start == (0 if s.byte_order == "little_endian" else 7)
        if crc is None and at_byte_0 and CRC_NAME.search(s.name):
            crc = s
        elif counter is None and 2 <= s.length <= 8 and COUNTER_NAME.search(s.name):
            if s.scale == 1 and s.offset == 0:
                counter = s
    return crc, counter


def _e2e(
    decoded: Sequence[Message], every: Sequence[Message], mappings: Sequence[_Mapping]
) -> Iterator[Refusal]:
    """Every protected message decoded and read is checked; every [[e2e]] entry matches a
    message of the bus (``every``: also one a colliding definition displaced)."""
    checks: list[tuple[_Mapping, int, E2ERule]] = [
        (m, i, check) for m in mappings for i, check in enumerate(m.config.e2e)
    ]
    matched = {(m.key, i) for m, i, c in checks if any(c.message.fullmatch(x.name) for x in every)}
    unchecked: dict[tuple[str, str], list[str]] = {}  # (key, what) -> signal names
    for message in decoded:
        applies = [c for _, _, c in checks if c.message.fullmatch(message.name)]
        reader = next(_readers(message, mappings), None)
        if reader is None:
            continue  # nothing reads it
        first = applies[0] if applies else None  # the decoder applies the first entry
        crc, counter = _e2e_signals(message)
        for signal, what, checked in (
            (crc, "CRC", first is not None and first.crc is not None),
            (counter, "alive counter", first is not None and first.counter is not None),
        ):
            if signal is not None and not checked:
                unchecked.setdefault((reader[0].key, what), []).append(signal.name)
    for (key, what), signals in unchecked.items():
        more = f" and {len(signals) - 1} more {what} signals are" if len(signals) > 1 else " is"
        yield Refusal(
            key,
            f"{signals[0]} ({what}){more} read without an [[e2e]] check: corrupted or "
            "frozen frames would be taken as valid",
        )
    for mapping, i, check in checks:
        if (mapping.key, i) not in matched:
            yield Refusal(
                mapping.key,
                f"[[e2e]] entry {i + 1} (message = '{check.message.pattern}') matches no "
                "message of the internal bus, so it checks nothing",
            )
