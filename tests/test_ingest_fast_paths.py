"""Shortcuts of the batch decoder give what the general path gives.

A quiet bus (an empty batch) leaves the state as it was. (Alive-counter verdicts of a whole
batch against a frame-by-frame check: tests/test_dbc_e2e_counter.py.)
"""

from __future__ import annotations

import numpy as np
from ingest_support import slave_decoder

from controller.frames import FrameBatch
from controller.ingest import RejectReason
from dbc.topology import Topology


def test_an_empty_batch_changes_nothing_and_reports_zeros() -> None:
    _, decoder = slave_decoder(Topology())
    state = decoder.new_state()
    report = decoder.decode(FrameBatch.empty(), state)
    assert (report.frames, report.unknown, report.updated) == (0, 0, 0)
    assert report.accepted.shape == (len(decoder.sources),) and not report.accepted.any()
    assert report.rejected.shape == (len(decoder.sources), len(RejectReason))
    assert not report.rejected.any() and not state.accepted.any()
    assert np.isinf(state.last_seen).all() and state.unknown == 0
