"""The open-circuit voltage table of each cell chemistry (``dbc/chemistry.toml``).

One table serves the simulated plant, the controller's SOC presets and the documentation:
a controller that reads SOC through a different curve than the cells follow is wrong by the
difference before any estimator runs. It lives here, below both ``controller`` and
``slaves``, because neither may import the other.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dbc.errors import ContractError

_PATH = Path(__file__).resolve().parent / "chemistry.toml"


@dataclass(frozen=True)
class OcvTable:
    """SOC (%) -> equilibrium OCV (V) and half the charge/discharge hysteresis gap (V)."""

    name: str
    soc: tuple[float, ...]
    ocv_v: tuple[float, ...]
    hysteresis_v: tuple[float, ...]
    hysteresis_rate: float


@cache
def ocv_tables() -> dict[str, OcvTable]:
    """Every chemistry's table by lowercase name, checked once."""
    with _PATH.open("rb") as f:
        data = tomllib.load(f)
    return {name: _table(name, entry) for name, entry in data.items()}


def ocv_table(name: str) -> OcvTable:
    """The table of chemistry ``name`` (case-insensitive)."""
    tables = ocv_tables()
    try:
        return tables[name.lower()]
    except KeyError:
        known = ", ".join(sorted(tables))
        raise ContractError(f"no OCV table for chemistry {name!r} (known: {known})") from None


def _table(name: str, entry: dict) -> OcvTable:
    table = OcvTable(
        name=name,
        soc=tuple(float(v) for v in entry["soc"]),
        ocv_v=tuple(float(v) for v in entry["ocv_v"]),
        hysteresis_v=tuple(float(v) for v in entry["hysteresis_v"]),
        hysteresis_rate=float(entry["hysteresis_rate"]),
    )
    n = len(table.soc)
    if len(table.ocv_v) != n or len(table.hysteresis_v) != n or n < 2:
        raise ContractError(f"chemistry.toml [{name}]: soc, ocv_v, hysteresis_v differ in length")
    if table.soc[0] != 0.0 or table.soc[-1] != 100.0:
        raise ContractError(f"chemistry.toml [{name}]: soc must run from 0 to 100")
    rising = all(b > a for a, b in zip(table.soc, table.soc[1:], strict=False)) and all(
        b > a for a, b in zip(table.ocv_v, table.ocv_v[1:], strict=False)
    )
    if not rising:
        raise ContractError(f"chemistry.toml [{name}]: soc and ocv_v must rise strictly")
    if min(table.hysteresis_v) < 0.0 or table.hysteresis_rate <= 0.0:
        raise ContractError(f"chemistry.toml [{name}]: hysteresis must not be negative")
    for sign in (1.0, -1.0):
        branch = [v + sign * h for v, h in zip(table.ocv_v, table.hysteresis_v, strict=True)]
        if any(b <= a for a, b in zip(branch, branch[1:], strict=False)):
            raise ContractError(f"chemistry.toml [{name}]: both OCV branches must rise strictly")
    return table
