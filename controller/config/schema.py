"""JSON Schema and reference tables generated from the declared sections.

The same declarations the loader validates with produce the JSON Schema (draft 2020-12) that
TOML editors check ``canbms.toml`` against, and the key tables of docs/configuration.md, so
neither can drift from what is accepted.
"""

from __future__ import annotations

import enum
import json
import typing
from pathlib import Path
from typing import Any, Literal

from controller.config.declare import (
    default_of,
    dump,
    fields_of,
    has_default,
    optional_inner,
    setting_of,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def section_schema(cls: type) -> dict[str, Any]:
    """The schema of one section: its keys, closed to any other."""
    properties: dict[str, Any] = {}
    required = []
    open_to_more = False
    for f, tp in fields_of(cls):
        meta = setting_of(f)
        if meta.from_key:
            continue
        if meta.extra:
            open_to_more = True
            continue
        prop = meta.schema() if meta.schema else value_schema(tp, meta)
        description = f"{meta.doc} ({meta.unit})" if meta.unit else meta.doc
        if description:
            prop.setdefault("description", description)
        if has_default(f):
            default = dump(default_of(f))
            if default is not None and default != {} and not meta.schema:
                prop["default"] = default
        elif not meta.parse:
            required.append(f.name)
        properties[f.name] = prop
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if cls.__doc__:
        out["description"] = cls.__doc__.strip().splitlines()[0]
    if required:
        out["required"] = required
    out["additionalProperties"] = open_to_more
    return out


def value_schema(tp: Any, meta: Any) -> dict[str, Any]:
    inner = optional_inner(tp)
    if inner is not None:
        return value_schema(inner, meta)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
        return section_schema(tp)
    if origin in (dict, typing.get_origin(typing.Mapping[str, Any])):
        value_type = typing.get_args(tp)[1]
        item = {} if value_type is Any else value_schema(value_type, setting_of_none())
        return {"type": "object", "additionalProperties": item}
    if origin in (tuple, list):
        out: dict[str, Any] = {
            "type": "array",
            "items": value_schema(typing.get_args(tp)[0], _item_meta(meta)),
        }
        if meta.min_items is not None:
            out["minItems"] = meta.min_items
        if meta.unique:
            out["uniqueItems"] = True
        return out
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.name.lower() for m in (meta.choices or tuple(tp))]}
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string"}
    out = {"type": kind[tp]}
    for key, name in (
        ("ge", "minimum"),
        ("gt", "exclusiveMinimum"),
        ("le", "maximum"),
        ("lt", "exclusiveMaximum"),
    ):
        if getattr(meta, key) is not None:
            out[name] = getattr(meta, key)
    if meta.choices is not None:
        out["enum"] = list(meta.choices)
    return out


def setting_of_none() -> Any:
    from controller.config.declare import Setting

    return Setting()


def _item_meta(meta: Any) -> Any:
    import dataclasses

    return dataclasses.replace(meta, min_items=None, unique=False)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a whole configuration file."""
    from controller.config.loader import PRESET_SECTIONS, ControllerConfig

    schema = section_schema(ControllerConfig)
    for name in PRESET_SECTIONS:  # the preset supplies what the file leaves out
        schema["properties"][name] = _optional(schema["properties"][name])
    required = [k for k in schema.get("required", ()) if k not in PRESET_SECTIONS]
    schema.pop("required", None)
    if required:
        schema["required"] = required
    return {
        "$schema": DRAFT,
        "title": "canbms controller configuration",
        **schema,
    }


def _optional(schema: Any) -> Any:
    """``schema`` with no key required anywhere inside."""
    if isinstance(schema, dict):
        return {k: _optional(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_optional(v) for v in schema]
    return schema


def write_schema(path: str | Path | None = None) -> str:
    text = json.dumps(config_schema(), indent=2) + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


# -- reference tables ---------------------------------------------------------------------


def _type_name(tp: Any, meta: Any) -> str:
    inner = optional_inner(tp)
    if inner is not None:
        return _type_name(inner, meta)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " \\| ".join(f'`"{c}"`' for c in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " \\| ".join(f'`"{m.name.lower()}"`' for m in (meta.choices or tuple(tp)))
    if origin in (tuple, list):
        return f"array of {_type_name(typing.get_args(tp)[0], _item_meta(meta))}"
    names = {bool: "bool", int: "integer", float: "number", str: "string", Path: "path"}
    return names.get(tp, "table")


def _bounds(meta: Any) -> str:
    parts = []
    for key, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        value = getattr(meta, key)
        if value is not None:
            parts.append(f"{sign} {_number(value)}")
    if meta.choices is not None and not isinstance(meta.choices[0], enum.Enum):
        parts.append("one of " + ", ".join(f"0x{c:X}" for c in meta.choices))
    return ", ".join(parts)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _default(f: Any) -> str:
    if not has_default(f):
        return "required"
    value = dump(default_of(f))
    if value is None:
        return "not set"
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return "`[" + ", ".join(f"0x{v:X}" if v > 9 else str(v) for v in value) + "]`"
    return f"`{json.dumps(value)}`"


def reference_table(cls: type) -> str:
    """A markdown table of the scalar keys of a section: type, default, bounds, unit, meaning."""
    rows = ["| key | type | default | bounds | unit | meaning |", "|---|---|---|---|---|---|"]
    for f, tp in fields_of(cls):
        meta = setting_of(f)
        if meta.from_key or meta.extra or meta.parse:
            continue
        if _type_name(tp, meta) == "table":
            continue
        rows.append(
            f"| `{f.name}` | {_type_name(tp, meta)} | {_default(f)} | {_bounds(meta)} | "
            f"{meta.unit} | {meta.doc} |"
        )
    return "\n".join(rows)


def reference_sections() -> dict[str, type]:
    """The declared sections the reference documents, by their heading."""
    from controller.adapters.registry import ADAPTERS
    from controller.config.loader import ControllerConfig

    sections: dict[str, type] = {"top level": ControllerConfig}
    for f, tp in fields_of(ControllerConfig):
        inner = optional_inner(tp) or tp
        if isinstance(inner, type) and hasattr(inner, "__dataclass_fields__") and fields_of(inner):
            sections[f"[{f.name}]"] = inner
    from controller.config.pack import BusConfig
    from controller.protection.config import CheckConfig, FlagLevelConfig, LevelConfig
    from controller.protection.plausibility_config import PlausibilityConfig

    sections["[protection.plausibility]"] = PlausibilityConfig
    sections["[protection.<check>]"] = CheckConfig
    sections["[protection.<check>.<level>]"] = LevelConfig
    sections["[protection.invalid_measurement.<level>]"] = FlagLevelConfig
    sections["[buses.<name>]"] = BusConfig
    for kind, adapter in ADAPTERS.items():
        sections[f'[[adapters]] type = "{kind}"'] = adapter.config
    return sections


def reference() -> str:
    """Every generated table under its heading, as docs/configuration.md holds them."""
    return "".join(
        f"#### `{title}`\n\n{reference_table(cls)}\n\n"
        for title, cls in reference_sections().items()
    )
