"""Exception hierarchy of the CAN contract: one root, one subclass per role."""

from __future__ import annotations


class ContractError(Exception):
    """Root of every error the ``dbc`` package raises on purpose."""


class TopologyError(ContractError, ValueError):
    """A pack topology the slave protocol cannot carry; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
