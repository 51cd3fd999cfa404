"""What of the controller's state must outlive the process.

A BMS that forgets a latched fault when it restarts closes its contactors onto the fault
that opened them; one that forgets its SOC publishes a guess until the pack next rests.
`Persisted` is the small, plain record of both that the shell stores (see
`controller.shell.store`) and hands back to `Controller.initial_state` after a restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RESTORED = "fault_restored"  # the catalogue entry of a fault asserted again after a restart


@dataclass(frozen=True)
class Persisted:
    """Latched faults by diagnosis ID, and SOC (%) of the lowest, highest and mean cell."""

    latched: tuple[str, ...] = ()
    soc_min: float = math.nan
    soc_max: float = math.nan
    soc_mean: float = math.nan

    @property
    def soc_known(self) -> bool:
        return all(math.isfinite(v) for v in (self.soc_min, self.soc_max, self.soc_mean))
