"""Load-time checks of what the assembly puts on each bus.

Two devices sending one identifier on one bus is a defect nobody sees on the bench and
everybody sees in the field (a charger obeying the wrong sender). So before the first cycle
every producer of the assembly (the pack core and each configured stage) claims the frame
keys it sends on its bus; a second claim, a stage on a bus that is not configured, or a stage
reading a frame the BMS itself sends on that bus is refused with the stage's dotted key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controller.errors import ConfigError
from controller.frames import EXTENDED_FLAG
from controller.stage import Stage


def describe(key: int) -> str:
    """A frame key as it is written in a DBC: 0x351, or 0x1806E5F4 (29-bit)."""
    return f"0x{key & ~EXTENDED_FLAG:X}" + (" (29-bit)" if key & EXTENDED_FLAG else "")


def check_traffic(
    buses: Iterable[str],
    core: Mapping[str, frozenset[int]],
    stages: Iterable[tuple[str, Stage]],
) -> None:
    """Refuse undefined buses and shared identifiers; ``stages`` pairs each with its key."""
    configured = tuple(buses)
    owners: dict[tuple[str, int], str] = {}
    for bus, keys in core.items():
        owners.update(((bus, key), "the BMS core") for key in keys)
    stages = tuple(stages)
    for where, stage in stages:
        if stage.bus not in configured:
            raise ConfigError(
                f"{where}.bus",
                f"{stage.bus!r} is not a configured bus (configured: {', '.join(configured)})",
            )
        for key in sorted(stage.traffic.produces):
            owner = owners.setdefault((stage.bus, key), stage.name)
            if owner != stage.name:
                raise ConfigError(
                    f"{where}.bus",
                    f"{stage.name!r} and {owner!r} would both send {describe(key)} "
                    f"on bus {stage.bus!r}",
                )
    for where, stage in stages:
        for key in sorted(stage.traffic.consumes):
            owner = owners.get((stage.bus, key))
            if owner is not None and owner != stage.name:
                raise ConfigError(
                    f"{where}.bus",
                    f"{stage.name!r} reads {describe(key)} on bus {stage.bus!r}, "
                    f"which {owner!r} sends",
                )
