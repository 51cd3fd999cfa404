"""Contactor sequence tunables, read from the ``[contactors]`` table.

```toml
[contactors]
precharge_timeout_s = 2.0        # one attempt; the DC link must match the pack within it
precharge_voltage_margin_v = 1.0 # |U_pack - U_link| below this ends the precharge ...
precharge_end_current_a = 1.0    # ... together with |I| below this
precharge_retries = 3            # attempts after the first before the sequence faults
retry_pause_s = 5.0              # open time between attempts (lets the resistor cool)
lockout_s = 10.0                 # no new close within this time after an open
break_current_a = 200.0          # largest current the contactors may interrupt
fuse_delay_s = 1.0               # under a fault above break current: give the fuse this long
feedback_timeout_s = 0.1         # aux contact may lag its close command this long
opening_time_s = 0.05            # contactor release time (added to the feedback timeout on open)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.config.declare import load, setting

_MAX_TIME_S = 3600.0


@dataclass(frozen=True)
class ContactorConfig:
    precharge_timeout_s: float = setting(
        2.0, ge=0.01, le=_MAX_TIME_S, unit="s",
        doc="one precharge attempt; the DC link must match the pack within it",
    )  # fmt: skip
    precharge_voltage_margin_v: float = setting(
        1.0, ge=0.001, unit="V", doc="|U_pack - U_link| below this ends the precharge"
    )
    precharge_end_current_a: float = setting(
        1.0, ge=0.0, unit="A", doc="... together with |I| below this"
    )
    precharge_retries: int = setting(
        3, ge=0, le=100, doc="attempts after the first before the sequence faults"
    )
    retry_pause_s: float = setting(
        5.0, ge=0.0, le=_MAX_TIME_S, unit="s", doc="open time between attempts"
    )
    lockout_s: float = setting(
        10.0, ge=0.0, le=_MAX_TIME_S, unit="s", doc="no new close within this time after an open"
    )
    break_current_a: float = setting(
        200.0, ge=0.001, unit="A", doc="largest current the contactors may interrupt"
    )
    fuse_delay_s: float = setting(
        1.0, ge=0.0, le=_MAX_TIME_S, unit="s",
        doc="under a fault above the break current: give the fuse this long",
    )  # fmt: skip
    feedback_timeout_s: float = setting(
        0.1, ge=0.001, le=_MAX_TIME_S, unit="s", doc="aux contact may lag its command this long"
    )
    opening_time_s: float = setting(
        0.05, ge=0.0, le=_MAX_TIME_S, unit="s", doc="contactor release time"
    )

    @property
    def open_allowance_s(self) -> float:
        """How long an aux contact may still read closed after its open command."""
        return self.opening_time_s + self.feedback_timeout_s

    @property
    def reaction_time_s(self) -> float:
        """Worst case from a latched fault to contacts apart: fuse delay plus release."""
        return self.fuse_delay_s + self.opening_time_s


def parse_contactors(data: Mapping[str, Any], path: str = "contactors") -> ContactorConfig:
    """Validate a ``[contactors]`` table; absent keys take the defaults above."""
    return load(ContactorConfig, data, path)
