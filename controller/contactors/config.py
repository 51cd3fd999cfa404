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

from controller.config import fields

_MAX_TIME_S = 3600.0


@dataclass(frozen=True)
class ContactorConfig:
    precharge_timeout_s: float = 2.0
    precharge_voltage_margin_v: float = 1.0
    precharge_end_current_a: float = 1.0
    precharge_retries: int = 3
    retry_pause_s: float = 5.0
    lockout_s: float = 10.0
    break_current_a: float = 200.0
    fuse_delay_s: float = 1.0
    feedback_timeout_s: float = 0.1
    opening_time_s: float = 0.05

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
    d = ContactorConfig()
    fields.unknown_keys(data, set(ContactorConfig.__dataclass_fields__), path)

    def seconds(key: str, default: float, minimum: float = 0.0) -> float:
        return fields.number(data, key, path, default, minimum=minimum, maximum=_MAX_TIME_S)

    return ContactorConfig(
        precharge_timeout_s=seconds("precharge_timeout_s", d.precharge_timeout_s, 0.01),
        precharge_voltage_margin_v=fields.number(
            data, "precharge_voltage_margin_v", path, d.precharge_voltage_margin_v, minimum=0.001
        ),
        precharge_end_current_a=fields.number(
            data, "precharge_end_current_a", path, d.precharge_end_current_a, minimum=0.0
        ),
        precharge_retries=fields.integer(
            data, "precharge_retries", path, d.precharge_retries, minimum=0, maximum=100
        ),
        retry_pause_s=seconds("retry_pause_s", d.retry_pause_s),
        lockout_s=seconds("lockout_s", d.lockout_s),
        break_current_a=fields.number(
            data, "break_current_a", path, d.break_current_a, minimum=0.001
        ),
        fuse_delay_s=seconds("fuse_delay_s", d.fuse_delay_s),
        feedback_timeout_s=seconds("feedback_timeout_s", d.feedback_timeout_s, 0.001),
        opening_time_s=seconds("opening_time_s", d.opening_time_s),
    )
