"""Chemistry presets shipped with the controller: ``<section>/<chemistry>.toml`` tables.

A preset is a starting point the pack configuration may copy or override: the loader lays
the file's table over it before anything is validated, and the declared section then judges
the result like any hand-written table.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from controller.errors import ConfigError

_ROOT = Path(__file__).resolve().parent
_NAME = re.compile(r"[a-z0-9_]+")


def load_preset(section: str, chemistry: str) -> dict[str, Any]:
    """The table of ``controller/presets/<section>/<chemistry>.toml``."""
    for key, name in (("section", section), ("chemistry", chemistry)):
        if not _NAME.fullmatch(name):
            raise ConfigError(key, f"{name!r} is not a preset name (lowercase, digits, _)")
    folder = _ROOT / section
    path = folder / f"{chemistry}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
        raise ConfigError(
            "chemistry",
            f"no {section} preset {chemistry!r} (available: {', '.join(known) or 'none'})",
        )
    with path.open("rb") as f:
        return tomllib.load(f)
