"""No cycle imports a module.

An import inside the loop stalls one cycle for as long as the import takes: NumPy's first
``np.median`` imports ``numpy.ma``, 20-30 ms of one cycle (0.1 s into a run of the default
pack, 30 s into one of the live benchmark's 1,024-cell pack, where it was an overrun). The
runtime imports such modules before its loop (`import_lazy_modules`). A fresh interpreter
is needed to see it: the test process has imported nearly everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

STEPS = 3_500  # 35 s: every periodic judgement has run at least once
LOSS = (2_800, 3_400)  # then every frame lost for 6 s: timeouts, faults, their events

SCRIPT = f"""
import json, sys
from controller.frames import FrameBatch
from controller.shell.runtime import import_lazy_modules
from dbc.topology import Topology
from hil.benchmarks.core_cycle import controller_for
from hil.benchmarks.traffic import Traffic

topology = Topology(8, 12, 4, False)
controller, traffic = controller_for(topology), Traffic(topology)
state = controller.initial_state(0.0)
import_lazy_modules()
known, imported, events = set(sys.modules), [], 0
for k in range({STEPS}):
    batch = traffic.next_batch()
    lost = {LOSS[0]} <= k < {LOSS[1]}
    result = controller.step(state, FrameBatch.empty() if lost else batch, traffic.now)
    state = result.state
    events += len([str(event) for event in result.events])  # as the runtime logs them
    if new := set(sys.modules) - known:
        imported.append([round(traffic.now, 2), sorted(new)])
        known |= new
fault = state.protection.fault_active
print(json.dumps({{"imported": imported, "events": events, "fault": fault}}))
"""


def test_no_step_imports_a_module_after_the_runtimes_preparation() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["fault"] and report["events"], "the loss raised faults and events"
    assert report["imported"] == [], f"imported inside steps: {report['imported']}"
