"""One plain Python function per slot that decodes its mapped columns from the payload.

The per-frame path decodes a handful of columns per frame; walking per-column tuples costs
more than the arithmetic. So each slot's columns are written out once, when the decoder is
built, as one expression per column over the payload read as an integer (little- and
big-endian): ``((payload >> shift) & mask)``, sign-extended, times scale plus offset, times
the unit scale, and the validity flag compared with its invalid value. The arithmetic is
the one the array path does, in the same order, so both give the same floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

SlotDecoder = Callable[[int, int], tuple[tuple[float, ...], tuple[bool, ...]]]
_CONSTANTS = {"inf": math.inf, "nan": math.nan, "isfinite": math.isfinite}


class FieldLike(Protocol):
    big: bool
    shift: int
    mask: int
    sign: int
    scale: float
    offset: float


class ColumnLike(Protocol):
    value: FieldLike
    flag: FieldLike | None
    flag_invalid: float
    scale: float


class SlotCode(NamedTuple):
    """A slot's elements and the function giving their values and validity."""

    elements: tuple[int, ...]
    decode: SlotDecoder


def _physical(field: FieldLike) -> str:
    source = "big" if field.big else "little"
    raw = f"(({source} >> {field.shift}) & {field.mask})"
    if field.sign:
        raw = f"(({raw} ^ {field.sign}) - {field.sign})"
    return f"({raw} * {field.scale!r} + {field.offset!r})"


def _always_finite(field: FieldLike, unit: float) -> bool:
    """No raw value of the field can give an infinite or NaN value."""
    largest = (abs(field.scale) * 2.0**64 + abs(field.offset)) * abs(unit)
    return math.isfinite(largest)


def compile_slot(columns: Sequence[ColumnLike], elements: Sequence[int], scaled: bool) -> SlotCode:
    """The decoder of columns (no index signals) feeding ``elements``; ``scaled``: apply
    each column's unit scale (the array path does when any column has one other than 1)."""
    values, goods = [], []
    for c in columns:
        value = _physical(c.value)
        if scaled and c.scale != 1.0:
            value = f"({value} * {c.scale!r})"
        values.append(value)
        good = [] if _always_finite(c.value, c.scale) else [f"isfinite(v{len(goods)})"]
        if c.flag is not None:
            good.append(f"{_physical(c.flag)} != {c.flag_invalid!r}")
        goods.append(" and ".join(good) or "True")
    names = [f"v{k}" for k in range(len(values))]
    body = "".join(f"    {name} = {value}\n" for name, value in zip(names, values, strict=True))
    source = (
        f"def decode(little, big):\n{body}    return ({', '.join(names)},), ({', '.join(goods)},)\n"
    )
    namespace = dict(_CONSTANTS)
    exec(compile(source, "<slot decoder>", "exec"), namespace)  # noqa: S102 - built from numbers
    return SlotCode(tuple(elements), namespace["decode"])
