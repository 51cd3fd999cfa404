"""Which definition of each frame a bus decodes when several DBCs describe the same ID.

A third-party slave DBC often describes more than its slaves (its own current sensor, its
own host frames), so it shares frame IDs with the other databases of the bus. Such a
collision only matters for messages the mapping needs: identical definitions are merged,
a needed message wins over unneeded ones, the configuration (``provides``) settles a tie,
and colliding messages nobody needs are ignored. Every choice is reported as a notice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cantools.database import Database
from cantools.database.can import Message

from controller.errors import ConfigError, MappingError
from controller.frames import frame_key
from controller.ingest.mapping import MappingConfig


@dataclass(frozen=True)
class Selection:
    """The messages a bus decodes, and what was decided about colliding IDs."""

    messages: tuple[Message, ...]
    notices: tuple[str, ...]


def _definition(message: Message) -> tuple:
    """Everything decoding depends on; equal definitions decode every frame alike."""
    return (
        message.name,
        message.length,
        tuple(
            (s.name, s.start, s.length, s.byte_order, s.is_signed, s.is_float, s.scale)
            + (s.offset, s.is_multiplexer, s.multiplexer_signal, tuple(s.multiplexer_ids or ()))
            for s in message.signals
        ),
    )


def needed(message: Message, mapping: MappingConfig) -> bool:
    """A rule reads one of its signals, or an end-to-end check applies to it."""
    names = [s.name for s in message.signals]
    for rule in mapping.rules:
        if rule.message is not None and rule.message.fullmatch(message.name) is None:
            continue
        if any(rule.signal.fullmatch(name) for name in names):
            return True
    return any(check.message.fullmatch(message.name) for check in mapping.e2e)


def check_provides(databases: Mapping[str, Database], provides: Mapping[str, str]) -> None:
    """Every ``provides`` entry names a database of the bus that defines that message."""
    for name, label in provides.items():
        key = f"dbc.provides.{name}"
        if label not in databases:
            known = ", ".join(databases)
            raise ConfigError(key, f"{label!r} is not a database of this bus ({known})")
        if name not in {m.name for m in databases[label].messages}:
            raise ConfigError(key, f"the {label} DBC defines no message {name!r}")


def _pick(
    group: list[tuple[str, Message]], mapping: MappingConfig, provides: Mapping[str, str]
) -> tuple[tuple[str, Message] | None, str]:
    """The definition to decode (or None) and why."""
    chosen = [(label, m) for label, m in group if provides.get(m.name) == label]
    if len(chosen) == 1:
        return chosen[0], "named by dbc.provides"
    wanted = [(label, m) for label, m in group if needed(m, mapping)]
    if len(wanted) == 1:
        return wanted[0], "the only one the mappings use"
    names = " and ".join(f"{m.name} ({label})" for label, m in group)
    if wanted:
        raise MappingError(
            f"frame ID 0x{group[0][1].frame_id:X} is both {names} and the mappings use "
            f"both: name the one to decode in [dbc] provides"
        )
    return None, "nothing maps them"


def select_messages(
    databases: Mapping[str, Database],
    mapping: MappingConfig,
    provides: Mapping[str, str] | None = None,
) -> Selection:
    """One definition per frame ID of a bus whose databases are keyed by a label (a role)."""
    provides = dict(provides or {})
    check_provides(databases, provides)
    groups: dict[int, list[tuple[str, Message]]] = {}
    for label, db in databases.items():
        for message in db.messages:
            group = groups.setdefault(frame_key(message.frame_id, message.is_extended_frame), [])
            if all(_definition(m) != _definition(message) for _, m in group):
                group.append((label, message))
    messages: list[Message] = []
    notices: list[str] = []
    for group in groups.values():
        if len(group) == 1:
            messages.append(group[0][1])
            continue
        pick, why = _pick(group, mapping, provides)
        others = [f"{m.name} ({label})" for label, m in group if pick is None or m is not pick[1]]
        where = f"frame ID 0x{group[0][1].frame_id:X}"
        if pick is None:
            notices.append(f"{where}: {' and '.join(others)} differ; {why}, so it is ignored")
            continue
        messages.append(pick[1])
        notices.append(
            f"{where}: decoded as {pick[1].name} ({pick[0]}), {why}; ignored: {', '.join(others)}"
        )
    return Selection(tuple(messages), tuple(notices))
