"""Measured arrays: validity is reported-valid AND fresh; statistics over valid elements only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from controller.errors import ConfigError
from controller.measurements import ArrayStats, Measurements


def test_arrays_share_flat_storage_and_start_never_valid() -> None:
    meas = Measurements({"cell_voltage": 4, "pack_current": 1})
    assert meas.layout == (("cell_voltage", 0, 4), ("pack_current", 4, 1))
    meas["pack_current"].value[0] = 12.5
    assert meas.value[4] == 12.5
    assert not meas["cell_voltage"].valid(now=0.0, timeout=np.inf).any()
    assert np.isinf(meas["cell_voltage"].age(3.0)).all()


def test_timeout_per_element_and_reported_validity() -> None:
    cells = Measurements({"cell_voltage": 3})["cell_voltage"]
    cells.value[:] = [3.6, 3.7, np.nan]
    cells.reported_valid[:] = [True, False, True]
    cells.updated_at[:] = [9.0, 9.9, 9.9]
    assert cells.valid(10.0, 0.5).tolist() == [False, False, False]  # stale, flagged, NaN
    assert cells.valid(10.0, np.array([1.0, 1.0, 1.0])).tolist() == [True, False, False]


@pytest.mark.parametrize("size", [0, -1, True, 2.0])
def test_bad_sizes_name_the_target(size) -> None:
    with pytest.raises(ConfigError, match="targets.x"):
        Measurements({"x": size})


def test_stats_with_nothing_valid_are_nan_and_invalid() -> None:
    stats = ArrayStats.of(np.array([1.0, 2.0]), np.array([False, False]))
    assert not stats.valid
    assert np.isnan([stats.minimum, stats.maximum, stats.mean, stats.total, stats.spread]).all()
    assert (stats.argmin, stats.argmax) == (-1, -1)


@given(
    hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-1e6, 1e6)),
    st.data(),
)
def test_stats_match_numpy_over_the_valid_subset(values, data) -> None:
    valid = data.draw(hnp.arrays(bool, values.shape))
    stats = ArrayStats.of(values, valid)
    assert stats.count == valid.sum()
    if not valid.any():
        assert not stats.valid
        return
    subset = values[valid]
    assert stats.minimum == subset.min() and stats.maximum == subset.max()
    assert valid[stats.argmin] and values[stats.argmin] == subset.min()
    assert valid[stats.argmax] and values[stats.argmax] == subset.max()
    assert stats.total == pytest.approx(subset.sum(), abs=1e-6)
    assert stats.mean == pytest.approx(subset.mean(), abs=1e-6)
    assert stats.spread == subset.max() - subset.min()
