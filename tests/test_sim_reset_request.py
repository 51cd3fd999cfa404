"""``canbms sim --request reset@T``: the simulated EMS pulses the fault-reset bit for 1 s."""

from __future__ import annotations

import cantools

from canbms.cli import build_parser
from dbc import path as dbc_path
from slaves.ems import Ems, EmsRequest

MASTER = cantools.database.load_file(str(dbc_path("canbms_master.dbc")))


def test_reset_is_a_one_second_pulse_in_standby() -> None:
    args = build_parser().parse_args(
        ["sim", "--system", "--request", "discharge@3", "--request", "reset@10"]
    )
    ems = Ems([c for entry in args.request for c in entry])
    decoded = {}
    for k in range(1, 1300):
        t = k * 0.01
        for msg in ems.step(t, 0.01):
            decoded[round(t, 2)] = MASTER.decode_message(
                msg.arbitration_id, msg.data, decode_choices=False
            )

    def at(t: float) -> tuple[int, int]:
        frame = decoded[max(sent for sent in decoded if sent <= t)]  # the request in force
        return int(frame["EMS_RequestedState"]), int(frame["EMS_FaultReset"])

    discharge, standby = int(EmsRequest.DISCHARGE), int(EmsRequest.STANDBY)
    assert at(5.0) == (discharge, 0)
    assert at(10.5) == (standby, 1)
    assert at(11.5) == (standby, 0)
