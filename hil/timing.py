"""What a reaction time is made of, read from the loaded configuration and its DBCs.

Every bound of the fault matrix is a sum of named terms (`Term`): the period of the frame
that carries the fault to the controller, a timeout threshold, the configured set delay of
the diagnosis, control cycles, the fuse delay. The report prints the sum, so a bound can be
checked by hand against the configuration; nothing is a hard-coded number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cantools

from controller.adapters.base import Level
from controller.config.ingest import load_databases
from controller.config.loader import ControllerConfig
from controller.protection import Check

LEVELS = {"fault": Level.FAULT, "alarm": Level.ALARM, "warning": Level.WARNING}
CHECKS = frozenset(check.value for check in Check)
CONTACTOR_ALLOWANCE = {  # the contactor setting a diagnosis waits for
    "contactor_welded": "open_allowance_s",
    "contactor_failed_to_close": "feedback_timeout_s",
    "contactor_feedback_lost": "feedback_timeout_s",
}


class Term(NamedTuple):
    label: str
    seconds: float


def total(terms: list[Term]) -> float:
    return sum(t.seconds for t in terms)


def formula(terms: list[Term]) -> str:
    return " + ".join(f"{t.seconds:g} ({t.label})" for t in terms)


def _period(db: cantools.database.can.Database, prefix: str) -> float:
    cycles = [m.cycle_time for m in db.messages if m.name.startswith(prefix) and m.cycle_time]
    if not cycles:
        raise ValueError(f"no message {prefix}* with a cycle time in {db}")
    return max(cycles) / 1000.0


@dataclass(frozen=True)
class Timing:
    """The configuration's times a bound is built from."""

    config: ControllerConfig
    periods: dict[str, float]

    @classmethod
    def of(cls, config: ControllerConfig) -> Timing:
        dbs, _ = load_databases(config.dbc)
        slaves, sensor, master = dbs["slaves"], dbs["sensor"], dbs["master"]
        periods = {
            "cell": _period(slaves, "CellVoltages"),
            "temperature": _period(slaves, "Temperatures"),
            "module status": _period(slaves, "ModuleStatus"),
            "current": _period(sensor, "IVT_Result_I"),
            "pack voltage": _period(sensor, "IVT_Result_U1"),
            "feedback": _period(master, "ContactorFeedback"),
            "command": _period(master, "ContactorCommand"),
            "ems": _period(master, "EMS_StateRequest"),
            "status": _period(master, "BMS_Status"),
        }
        return cls(config, periods)

    @property
    def cycle(self) -> Term:
        return Term("cycle", self.config.cycle_s)

    def period(self, source: str) -> Term:
        return Term(f"{source} period", self.periods[source])

    def delay(self, diagnosis: str, level: str) -> Term:
        """The set delay of ``diagnosis`` at ``level``, or a contactor diagnosis' allowance."""
        if diagnosis in CONTACTOR_ALLOWANCE:
            key = CONTACTOR_ALLOWANCE[diagnosis]
            return Term(f"contactors.{key}", getattr(self.config.contactors, key))
        if diagnosis not in CHECKS:  # judged by its catalogue entry
            delay = self.config.diagnosis[diagnosis].set_delay_ms
            return Term(f"diagnosis.{diagnosis}.set_delay_ms", delay / 1000.0)
        cfg = self.config.protection.checks[Check(diagnosis)].levels[LEVELS[level]]
        return Term(f"{diagnosis}.{level}.set_delay", cfg.set_delay_ms / 1000.0)

    def threshold(self, diagnosis: str, level: str = "fault") -> float:
        cfg = self.config.protection.checks[Check(diagnosis)].levels[LEVELS[level]]
        assert cfg.threshold is not None, f"{diagnosis} has no threshold"
        return float(cfg.threshold)

    def timeout(self, diagnosis: str) -> Term:
        """A staleness check's fault threshold (seconds since the last valid frame)."""
        return Term(f"{diagnosis}.fault.threshold", self.threshold(diagnosis))

    def staleness(self, target: str) -> Term:
        """How long a measured value stays valid without a new frame (``[ingest]``)."""
        return Term(f"ingest.timeout.{target}", self.config.ingest.timeout(target))

    def adapter(self, kind: type, key: str) -> Term:
        """A setting of the first configured adapter of class ``kind`` (``[[adapters]]``)."""
        for i, stage in enumerate(self.config.adapters):
            if isinstance(stage, kind):
                return Term(f"adapters[{i}].{key}", float(getattr(stage.config, key)))
        raise ValueError(f"the configuration has no {kind.__name__} adapter")

    @property
    def evaluation(self) -> Term:
        seconds = self.config.protection.plausibility.evaluation_period_s
        return Term("plausibility.evaluation_period", seconds)

    @property
    def fuse(self) -> Term:
        return Term("contactors.fuse_delay_s", self.config.contactors.fuse_delay_s)

    @property
    def break_current(self) -> float:
        return self.config.contactors.break_current_a
