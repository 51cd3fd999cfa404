"""A (width, cells) array of which each step replaces the columns of a few cells, without
copying the rest: the newest version holds the array and the replacement is written into
it; the version before keeps, instead of the array, the columns it had there and the
version it differs from. Reading an older version moves the array back to it (the versions
between swap their columns), so every version reads as it was made, in any order."""

from __future__ import annotations

import numpy as np


class Columns:
    """One version; never changed as seen from outside."""

    __slots__ = ("_array", "_cells", "_kept", "_newer")

    def __init__(self, array: np.ndarray) -> None:
        self._array: np.ndarray | None = array
        self._cells: np.ndarray | None = None  # where this version differs from _newer
        self._kept: np.ndarray | None = None  # this version's columns there
        self._newer: Columns | None = None

    def columns(self, cells: np.ndarray) -> np.ndarray:
        """The columns of ``cells`` (indices), a new array."""
        return self._held()[:, cells]

    def read(self) -> np.ndarray:
        """Every column, read-only, to be copied from before another version is used."""
        view = self._held().view()
        view.flags.writeable = False
        return view

    def replaced(self, cells: np.ndarray, columns: np.ndarray, were: np.ndarray) -> Columns:
        """A new version: this one with ``columns`` at ``cells`` (indices, each once),
        where it has ``were`` (as `columns` gave them)."""
        array = self._held()
        newer = Columns(array)
        self._array, self._cells, self._kept, self._newer = None, cells, were, newer
        array[:, cells] = columns
        return newer

    def _held(self) -> np.ndarray:
        """The array, moved to this version first if a newer one holds it."""
        path: list[Columns] = []
        node = self
        while node._array is None:
            path.append(node)
            assert node._newer is not None
            node = node._newer
        array = node._array
        for older in reversed(path):  # from the holder's neighbour back to this version
            newer = older._newer
            assert newer is not None and older._cells is not None and older._kept is not None
            cells = older._cells
            newer._cells, newer._kept, newer._newer = cells, array[:, cells], older
            newer._array = None
            array[:, cells] = older._kept
            older._array, older._cells, older._kept, older._newer = array, None, None, None
        return array
