"""The live runtime benchmark: every frame offered is taken, and a fault opens after its delay.

Both run the real shell on python-can's virtual bus at wall-clock speed; what they assert
holds however loaded the machine is (frames are counted, latencies come from bus
timestamps and are bounded below by the check's set delay, never above by the machine).
"""

from __future__ import annotations

from hil.benchmarks import live


def test_every_frame_offered_reaches_the_core_in_order_of_cycles() -> None:
    result = live.throughput(2.0, share=0.3)
    assert result.offered > 0.3 * live.SATURATED_FRAMES_PER_S * 2.0 * 0.99
    assert result.processed == result.offered, "nothing lost between bus and core"
    assert result.dropped == 0


def test_an_over_current_opens_the_contactors_never_before_its_set_delay() -> None:
    reaction = live.reaction(5, seed=1)
    assert reaction.missed == 0, "every injection ends in an open command"
    # a plant thread kept from the CPU lets data go stale: another fault may open first
    assert len(reaction.latencies_ms) + reaction.other_cause == 5
    assert len(reaction.latencies_ms) >= 1
    assert reaction.delay_ms == 100.0  # the preset's charge over-current fault
    assert (reaction.latencies_ms >= reaction.delay_ms).all(), reaction.latencies_ms
