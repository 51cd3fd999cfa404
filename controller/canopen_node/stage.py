"""The CiA 418 battery node as a stage of the assembly.

A 1 written to 2101h by SDO is a fault reset request: the stage reports it in its output and
the pack core applies it in the next step, like the EMS reset bit. Every SDO write attempt is
an event (``canopen_sdo_write``), and the loss of the consumed charger heartbeat
(``charger_heartbeat_lost``) sets the charge current request to 0 while it lasts.

canopen's `LocalNode` keeps the object dictionary, the SDO server and the NMT state; here it
sits on a `FrameNetwork` that carries no bus at all: the frames its bus delivered are fed in
with ``notify`` and what the node sends is collected and returned as the stage's frames. So
the node runs in the same cycle, at the same ``now``, live, in virtual time and in replay,
and a stalled control loop silences its heartbeat.

The node object is the stage's state and is updated in place (SDO writes change its
dictionary), as the measured arrays of the core are: a state is consumed by the step that
takes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import canopen
import numpy as np

from controller.adapters.base import Level
from controller.canopen_node.config import BatteryNodeConfig
from controller.canopen_node.dictionary import TPDO_LAYOUT
from controller.canopen_node.node import BatteryNode
from controller.diagnosis import Event
from controller.frames import OutFrame
from controller.stage import StageInputs, StageOutput, Traffic

_NMT, _SDO_RX, _SDO_TX, _HEARTBEAT = 0x000, 0x600, 0x580, 0x700
SDO_WRITE = "canopen_sdo_write"
CHARGER_LOST = "charger_heartbeat_lost"


class FrameNetwork(canopen.Network):
    """A `canopen.Network` without a bus: frames in through ``notify``, out through ``take``."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox: list[tuple[int, bytes]] = []

    def send_message(self, can_id: int, data: bytes, remote: bool = False) -> None:
        self.outbox.append((can_id, bytes(data)))

    def take(self) -> list[tuple[int, bytes]]:
        out, self.outbox = self.outbox, []
        return out


@dataclass
class NodeState:
    """The running node (mutable, see the module docstring) and its frame network."""

    network: FrameNetwork
    node: BatteryNode
    charger_lost: bool = False  # as reported by the last event


class BatteryNodeStage:
    """Boot-up, heartbeat, TPDOs and the SDO server of the battery node, on ``config.bus``."""

    def __init__(self, config: BatteryNodeConfig, name: str = "canopen") -> None:
        self.config = config
        self.name = name
        self.bus = config.bus
        self._consumed = np.array(sorted(self.traffic.consumes), np.uint32)

    @property
    def traffic(self) -> Traffic:
        """NMT, SDO requests and the charger's heartbeat in; boot-up/heartbeat, SDO responses
        and TPDOs out (11-bit)."""
        node, charger = self.config.node_id, self.config.charger_node_id
        return Traffic(
            consumes=frozenset(
                (_NMT, _SDO_RX + node, *((_HEARTBEAT + charger,) if charger else ()))
            ),
            produces=frozenset(
                (_HEARTBEAT + node, _SDO_TX + node, *(base + node for base, _ in TPDO_LAYOUT))
            ),
        )

    def initial_state(self) -> NodeState:
        network = FrameNetwork()
        return NodeState(network, BatteryNode(network, self.config))

    def step(
        self, state: NodeState, inputs: StageInputs, now: float
    ) -> tuple[NodeState, StageOutput]:
        rx = inputs.frames
        mine = ~rx.extended & np.isin(rx.ids, self._consumed)  # NMT and SDO: a few a second
        for can_id, dlc, data in zip(rx.ids[mine], rx.dlc[mine], rx.data[mine], strict=True):
            state.network.notify(int(can_id), bytearray(data[:dlc]), now)
        state.node.update(inputs.snapshot, now)
        frames = tuple(OutFrame(i, d, self.bus) for i, d in state.network.take())
        writes = state.node.take_writes()
        events = [Event(now, SDO_WRITE, Level.OK, "set", detail=w) for w in writes]
        if state.node.charger_lost != state.charger_lost:
            state.charger_lost = state.node.charger_lost
            kind = "set" if state.charger_lost else "cleared"
            detail = f"charger node {self.config.charger_node_id}: charge current request 0"
            events.append(Event(now, CHARGER_LOST, Level.ALARM, kind, detail=detail))
        return state, StageOutput(
            frames=frames, events=tuple(events), reset_requested=state.node.take_reset_request()
        )
