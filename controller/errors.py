"""The controller's errors: the canbms hierarchy of `dbc.errors`, with the controller's names.

``ConfigError`` is raised for a configuration section, ``MappingError`` for a DBC plus a
mapping that cannot be compiled into a decoder (a contract problem found at load).
"""

from __future__ import annotations

from dbc.errors import BusError, CanbmsError, ContractError, RuntimeFault
from dbc.errors import ConfigurationError as ConfigError


class MappingError(ContractError):
    """A DBC plus mapping that cannot be compiled into a decoder."""


__all__ = [
    "BusError",
    "CanbmsError",
    "ConfigError",
    "ContractError",
    "MappingError",
    "RuntimeFault",
]
