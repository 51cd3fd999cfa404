"""The SOC filter gathers the fresh cells block-wise where they come in aligned runs: the
blocks must hold exactly the cells a cell-by-cell gather takes, in the same order, and
writing them back must change exactly those cells."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from controller.estimation.cell_soc import Columns


@st.composite
def fresh_cells(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """Cells refreshed in runs (a frame group arrives whole) or one by one, of a pack."""
    group = draw(st.integers(1, 12))
    groups = draw(st.integers(1, 40))
    whole = draw(st.lists(st.booleans(), min_size=groups, max_size=groups))
    fresh = np.repeat(np.array(whole), group)
    stray = draw(st.lists(st.integers(0, fresh.size - 1), max_size=3))
    fresh[stray] = ~fresh[stray]  # a cell read invalid, or one group of uneven size
    return fresh.nonzero()[0], fresh.size


@given(fresh_cells(), st.integers(1, 4))
def test_blocks_gather_and_write_back_exactly_the_fresh_cells(drawn, rows):
    cells, total = drawn
    if cells.size == 0:
        return
    columns = Columns.of(cells, total)
    assert total % columns.width == 0
    values = np.arange(rows * total, dtype=np.float64).reshape(rows, total)
    assert np.array_equal(columns.take(values), values[:, cells])
    assert np.array_equal(columns.take(values[0]), values[0, cells])
    written = values.copy()
    columns.put(written, -columns.take(values))
    expected = values.copy()
    expected[:, cells] = -values[:, cells]
    assert np.array_equal(written, expected)


def test_whole_frame_groups_are_moved_as_blocks():
    fresh = np.zeros(500, bool)
    fresh[50:100] = fresh[300:350] = True
    columns = Columns.of(fresh.nonzero()[0], fresh.size)
    assert columns.width == 50 and columns.blocks.tolist() == [1, 6]
