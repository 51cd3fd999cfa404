"""Exception hierarchy of the controller: one root, one subclass per role."""

from __future__ import annotations


class ControllerError(Exception):
    """Root of every error the controller raises on purpose."""


class ConfigError(ControllerError):
    """Configuration that cannot be used; the message names the offending key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class MappingError(ControllerError):
    """A DBC plus mapping that cannot be compiled into a decoder."""
