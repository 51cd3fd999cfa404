"""Command security: what a request that closes contactors or resets a fault must prove.

CAN has no sender address, so the E2E header of ``EMS_StateRequest`` tells a corrupted frame
from a good one but not the EMS from another node (docs/security.md). The command gate makes
a request to close or to reset wait for several consecutive good frames, and turns two
interleaved senders into standby.
"""

from controller.security.config import SecurityConfig
from controller.security.gate import CommandGate, GateState

__all__ = ["CommandGate", "GateState", "SecurityConfig"]
