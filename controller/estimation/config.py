"""Tunables of the state-of-health estimate (``[soh]``).

```toml
[soh]
initial_soh_percent = 100.0       # published until a cell's capacity is measured
min_soc_swing_percent = 30.0      # a capacity needs this much SOC between two rests
capacity_weight = 0.3             # share of a new capacity measurement in the estimate
min_current_step_a = 10.0         # a resistance needs a current step this large ...
max_sample_interval_ms = 500.0    # ... between two cell readings at most this far apart
settle_ms = 100.0                 # a reading counts once the current is steady this long
resistance_weight = 0.1           # share of a new resistance measurement in the estimate
reference_resistance_mohm = 1.2   # optional: new-cell resistance, for the growth figure
```

Rests (current and time) and the OCV table are those of ``[soc]``; the nominal capacity is
``[soc] capacity_ah``.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config.declare import setting


@dataclass(frozen=True)
class SohConfig:
    initial_soh_percent: float = setting(
        100.0, ge=0.0, le=100.0, unit="%", doc="SOH assumed for every cell until it is measured"
    )
    min_soc_swing_percent: float = setting(
        30.0, ge=5.0, le=100.0, unit="%",
        doc="a cell's capacity is measured only across this SOC swing between two rests",
    )  # fmt: skip
    capacity_weight: float = setting(
        0.3, gt=0.0, le=1.0, doc="share of a new capacity measurement in the cell's estimate"
    )
    min_current_step_a: float = setting(
        10.0, gt=0.0, unit="A", doc="a resistance is measured only across a current step this large"
    )
    max_sample_interval_ms: float = setting(
        500.0, gt=0.0, le=10_000.0, unit="ms",
        doc="... between two readings of the cell at most this far apart",
    )  # fmt: skip
    settle_ms: float = setting(
        100.0, ge=0.0, le=10_000.0, unit="ms",
        doc="a cell reading counts once the current has been steady this long",
    )  # fmt: skip
    resistance_weight: float = setting(
        0.1, gt=0.0, le=1.0, doc="share of a new resistance measurement in the cell's estimate"
    )
    reference_resistance_mohm: float | None = setting(
        None, gt=0.0, unit="mOhm", doc="new-cell resistance; without it no growth is reported"
    )

    @property
    def max_sample_interval_s(self) -> float:
        return self.max_sample_interval_ms / 1000.0

    @property
    def settle_s(self) -> float:
        return self.settle_ms / 1000.0

    @property
    def steady_band_a(self) -> float:
        """The current is steady while it stays this close to where it settled."""
        return self.min_current_step_a / 5.0
