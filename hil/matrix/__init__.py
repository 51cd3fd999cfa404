"""The fault matrix of ``canbms hil``: rows of (fault, pack state, expected reaction), as data.

A matrix is a TOML file with one ``[[row]]`` table per row:

```toml
[[row]]
fault = "slave_silent"            # an injection from hil.injections.INJECTIONS
state = "closed_discharge"        # standby, precharge, closed_charge, closed_discharge
diagnosis = "slave_timeout"       # a catalogue ID, or "none" (nothing may be raised)
level = "fault"                   # the level to reach: fault (default), alarm, warning
reaction = "open"                 # open, limits_zero, derate, stop_charging, none
quick = true                      # part of the --quick subset
```

``expect = "pending"`` marks a row whose expectation is not documented yet: it runs and its
observations are reported, but it is not judged. Loading validates every row and names the
key of an error (``row[3].diagnosis: 'slave_timout' is not in the diagnosis catalogue``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from controller.diagnosis.catalogue import Catalogue
from controller.errors import ConfigError
from hil.injections import INJECTIONS

STATES = ("standby", "precharge", "closed_charge", "closed_discharge")
REACTIONS = ("open", "limits_zero", "derate", "stop_charging", "none")
REPORTING = ("none", "stop_charging")  # the reactions a warning may have
LEVELS = ("fault", "alarm", "warning")
ROW_KEYS = {"fault", "state", "diagnosis", "level", "reaction", "quick", "expect", "note"}


@dataclass(frozen=True)
class Row:
    """Inject ``fault`` with the pack in ``state``; expect ``diagnosis`` and ``reaction``."""

    index: int
    fault: str
    state: str
    diagnosis: str  # catalogue ID, or "none"
    level: str
    reaction: str
    quick: bool = False
    pending: bool = False  # expectation not documented yet: observed, not judged
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.fault}@{self.state}"


def load_matrix(path: Path | str | None, catalogue: Catalogue) -> list[Row]:
    """The rows of the matrix file ``path`` (the shipped default when None), validated."""
    if path is None:
        text = resources.files("hil.matrix").joinpath("default.toml").read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return parse_matrix(tomllib.loads(text), catalogue)


def parse_matrix(data: dict[str, Any], catalogue: Catalogue) -> list[Row]:
    unknown = set(data) - {"row"}
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown key (a matrix holds [[row]] tables)")
    rows = data.get("row")
    if not isinstance(rows, list) or not rows:
        raise ConfigError("row", "a matrix needs at least one [[row]]")
    out = [_row(i, entry, catalogue) for i, entry in enumerate(rows)]
    seen: dict[str, int] = {}
    for row in out:
        if row.name in seen:
            raise ConfigError(f"row[{row.index}]", f"{row.name} repeats row[{seen[row.name]}]")
        seen[row.name] = row.index
    return out


def _row(i: int, entry: Any, catalogue: Catalogue) -> Row:
    where = f"row[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError(where, "must be a table")
    for key in sorted(set(entry) - ROW_KEYS):
        raise ConfigError(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(ROW_KEYS))})")
    for key in ("fault", "state", "diagnosis", "reaction"):
        if not isinstance(entry.get(key), str):
            raise ConfigError(f"{where}.{key}", "required, a string")
    fault, state, diagnosis = entry["fault"], entry["state"], entry["diagnosis"]
    if fault not in INJECTIONS:
        raise ConfigError(f"{where}.fault", f"{fault!r} is not a fault the plant can inject")
    if state not in STATES:
        raise ConfigError(f"{where}.state", f"{state!r} is not one of {', '.join(STATES)}")
    if diagnosis != "none" and diagnosis not in catalogue:
        raise ConfigError(f"{where}.diagnosis", f"{diagnosis!r} is not in the diagnosis catalogue")
    reaction, level = entry["reaction"], entry.get("level", "fault")
    if reaction not in REACTIONS:
        raise ConfigError(f"{where}.reaction", f"{reaction!r} is not one of {', '.join(REACTIONS)}")
    if level not in LEVELS:
        raise ConfigError(f"{where}.level", f"{level!r} is not one of {', '.join(LEVELS)}")
    if diagnosis == "none" and reaction != "none":
        raise ConfigError(f"{where}.reaction", "diagnosis 'none' expects reaction 'none'")
    if (level == "warning") != (reaction in REPORTING and diagnosis != "none"):
        raise ConfigError(
            f"{where}.level",
            "a warning goes with reaction 'none' or 'stop_charging', and only a warning does",
        )
    expect = entry.get("expect", "judged")
    if expect not in ("judged", "pending"):
        raise ConfigError(f"{where}.expect", f"{expect!r} is not one of judged, pending")
    quick = entry.get("quick", False)
    if not isinstance(quick, bool):
        raise ConfigError(f"{where}.quick", "must be true or false")
    return Row(
        i, fault, state, diagnosis, level, reaction, quick, expect == "pending",
        str(entry.get("note", "")),
    )  # fmt: skip
