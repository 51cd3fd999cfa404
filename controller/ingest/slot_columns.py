"""Where each mapped value of a slot sits in the payload's 64-bit words, and how it scales.

The steady batch's writes (`controller.ingest.slot_words`, `controller.ingest.every_slot`)
decode a field as a shift and mask of one word or of two neighbouring ones. A Motorola
field is the same in the payload's byte-swapped words, which follow the words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from controller.frames import MAX_PAYLOAD
from controller.ingest.fields import Field, field_of
from controller.ingest.routing import Routes

WORD_BITS = 64
_WORD_BYTES = 8
WORDS = MAX_PAYLOAD // _WORD_BYTES  # the byte-swapped words are numbered after these


class Place(NamedTuple):
    """Where a field sits: ``(words[word] >> shift | words[next_word] << next_shift)``;
    a next shift of 64 shifts everything out (a field inside one word)."""

    word: int
    shift: int
    next_word: int
    next_shift: int


def place(field: Field, length: int) -> Place:
    """A little-endian field counts from bit 0 of word 0. Bit b of a Motorola field's
    big-endian reading is bit b % 8 of payload byte ``length - 1 - b // 8``, which that
    byte's byte-swapped word holds at ``8 * (7 - byte % 8) + b % 8``; its more
    significant bits go on in the byte-swapped word before it."""
    if field.big:
        byte = length - 1 - field.shift // _WORD_BYTES
        word = WORDS + byte // _WORD_BYTES
        shift = _WORD_BYTES * (7 - byte % _WORD_BYTES) + field.shift % _WORD_BYTES
        higher = word - 1
    else:
        word, shift = divmod(field.shift, WORD_BITS)
        higher = word + 1
    if shift + field.mask.bit_length() > WORD_BITS:
        return Place(word, shift, higher, WORD_BITS - shift)
    return Place(word, shift, word, WORD_BITS)


class Column(NamedTuple):
    """One mapped value column of a slot: its field, unit scale and validity flag."""

    value: Place
    field: Field
    unit: float
    flag: tuple[Place, Field, float] | None  # the flag's place, field and invalid value


def columns_of(routes: Routes, s: int, length: int) -> list[Column] | None:
    """The mapped value columns of slot ``s`` (None if one cannot be read from words)."""
    row = routes.table.rows[s]
    columns = []
    for w in range(routes.target.shape[1]):
        if routes.target[s, w] < 0:
            continue
        value = field_of(row[routes.column[s, w]], length)
        flag = None
        if routes.has_flag[s, w]:
            flag_field = field_of(row[routes.flag_column[s, w]], length)
            if _unsigned_64(flag_field):
                return None
            flag = (place(flag_field, length), flag_field, float(routes.flag_invalid[s, w]))
        if _unsigned_64(value):
            return None
        columns.append(Column(place(value, length), value, float(routes.scale[s, w]), flag))
    return columns


def _unsigned_64(field: Field) -> bool:
    """An unsigned 64-bit field, which a shape with a signed column would read as signed."""
    return field.mask.bit_length() == WORD_BITS and not field.sign


class Scaling(NamedTuple):
    """Which steps of ``raw * scale + offset`` (then times the unit scale) can change a
    value, so that a write skips the others."""

    scale: bool  # times 1.0 changes no value
    offset: bool  # adding 0 changes nothing, unless a negative scale made a -0.0
    unit: bool
    finite: bool  # no raw value can give an infinite or NaN value

    @classmethod
    def of(
        cls, scale: np.ndarray, offset: np.ndarray, unit: np.ndarray, columns: Iterable[Column]
    ) -> Scaling:
        return cls(
            bool((scale != 1).any()),
            bool(offset.any() or (scale < 0).any()),
            bool((unit != 1).any()),
            all(
                math.isfinite((abs(c.field.scale) * 2.0**64 + abs(c.field.offset)) * c.unit)
                for c in columns
            ),
        )
