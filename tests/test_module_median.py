"""The per-module median the cell plausibility checks judge each cell against is numpy's
median of the module's valid cells, for any module size, NaN and infinity included."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from controller.protection.cell_plausibility import module_median

READINGS = st.one_of(
    st.floats(2.5, 4.3), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.3])
)


@given(st.integers(1, 8), st.integers(1, 9), st.data())
def test_the_module_median_is_numpys_median_of_the_valid_cells(modules, per, data):
    values = data.draw(arrays(np.float64, modules * per, elements=READINGS))
    valid = data.draw(st.one_of(st.just(np.ones(modules * per, bool)), arrays(bool, modules * per)))
    grid = np.where(valid, values, np.nan).reshape(modules, per)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN modules: NaN, as expected
        expected = np.median(grid, axis=1) if valid.all() else np.nanmedian(grid, axis=1)
    assert np.array_equal(module_median(values, valid, modules), np.repeat(expected, per), True)
