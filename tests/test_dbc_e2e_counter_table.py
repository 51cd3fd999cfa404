"""Both ways the counter check settles a batch with dropped frames give the rule's verdicts.

Small counters (Profile 11) are settled with a table of the next accepted frame per counter
value, larger ones by searching anchor by anchor; each must equal the frame-by-frame rule,
so the property runs once with the table and once with it switched off.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from test_dbc_e2e_counter import MAX_STEP, MODULO, _one_at_a_time, _streams

import dbc.e2e_counter
from dbc.e2e_counter import CounterState, check_counters


@pytest.mark.parametrize("table", [True, False])
@given(batches=_streams())
def test_table_and_anchor_search_equal_the_rule(table, batches) -> None:
    cells = dbc.e2e_counter._TABLE_CELLS
    dbc.e2e_counter._TABLE_CELLS = cells if table else 0
    try:
        state, expected_state = CounterState.fresh(4), CounterState.fresh(4)
        for msg, counter, timestamps in batches:
            expected = _one_at_a_time(expected_state, msg, counter, timestamps, MODULO, MAX_STEP)
            got = check_counters(state, msg, counter, timestamps, MODULO, MAX_STEP)
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(state.reference, expected_state.reference)
            np.testing.assert_array_equal(state.received, expected_state.received)
    finally:
        dbc.e2e_counter._TABLE_CELLS = cells


def test_a_long_run_of_one_id_is_settled_by_the_table() -> None:
    """4,096 frames of one ID, every genuine frame followed by a late copy."""
    genuine = np.arange(1, 2049) % 15
    stream = np.empty(4096, np.int64)
    stream[0::2], stream[1::2] = genuine, np.roll(genuine, 3)
    state, expected_state = CounterState.fresh(1), CounterState.fresh(1)
    args = (np.zeros(4096, np.intp), stream, np.arange(4096.0), np.array([15]), np.array([1]))
    assert 15 * 4096 <= dbc.e2e_counter._TABLE_CELLS
    np.testing.assert_array_equal(
        check_counters(state, *args), _one_at_a_time(expected_state, *args)
    )
