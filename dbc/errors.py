"""The exception hierarchy of canbms: one root, one subclass per role.

It lives in ``dbc``, the lowest package, so that the controller, the plant and the bench
all raise and catch the same types. Nothing but a subclass of `CanbmsError` leaves a stage
on purpose; anything else is a defect and the shell treats it as one (safe state, logged).
"""

from __future__ import annotations


class CanbmsError(Exception):
    """Root of every error canbms raises on purpose."""


class ContractError(CanbmsError):
    """A CAN contract (DBC, topology, mapping) that cannot be used as it is."""


class TopologyError(ContractError, ValueError):
    """A pack topology the slave protocol cannot carry; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ConfigurationError(CanbmsError):
    """Configuration that cannot be used; the message names the offending dotted key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class BusError(CanbmsError):
    """A bus that cannot be opened, or that failed while running; the message names it."""


class RuntimeFault(CanbmsError):
    """A stage that could not complete its step; the runtime turns it into the safe state."""
