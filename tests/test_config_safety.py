"""Safety validation: unsafe configurations are refused naming the key, or accepted only
through ``unsafe_override`` with a warning at every start and an ``unsafe_override`` event."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canbms.cli import main
from canbms.cli.run import STATE_FILE, banner
from controller.adapters.base import Level
from controller.config import loader
from controller.config.loader import default_config, load_config, merged, parse_config
from controller.config.safety import MAX_BREAK_CURRENT_A, MAX_CYCLE_MS, chemistry_bounds
from controller.core import Controller
from controller.errors import ConfigError
from controller.frames import FrameBatch
from controller.presets import load_preset
from controller.protection import Check
from controller.shell.store import Store
from dbc.slave_protocol import write_dbc
from dbc.topology import Topology


def _build(data: dict[str, Any], base: Path | None = None) -> Controller:
    return Controller(parse_config(data, base))


def _refused(data: dict[str, Any], base: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _build(data, base)
    return info.value


def _slave_mapping(tmp_path: Path, e2e: str) -> dict[str, Any]:
    """The shipped slave mapping with its [[e2e]] entries replaced by ``e2e``."""
    text = resources.files("controller.mappings").joinpath("canbms_slaves.toml").read_text()
    start = text.index("[[e2e]]")
    end = text.index("[[rule]]")
    (tmp_path / "slaves.toml").write_text(text[:start] + e2e + text[end:], encoding="utf-8")
    return {"ingest": {"slave_mapping": "slaves.toml"}}


# -- one test per refused case ------------------------------------------------------------


def test_a_disabled_protection_check_is_refused() -> None:
    error = _refused({"protection": {"cell_overvoltage": {"enabled": False}}})
    assert error.key == "protection.cell_overvoltage.enabled"
    assert "never detected" in str(error)


def test_an_overvoltage_fault_beyond_the_chemistry_is_refused() -> None:
    error = _refused({"protection": {"cell_overvoltage": {"fault": {"threshold": 10.0}}}})
    assert error.key == "protection.cell_overvoltage.fault.threshold"
    assert "absolute maximum 4.3 of nmc cells" in str(error)


def test_an_undervoltage_fault_below_the_chemistry_is_refused() -> None:
    data = {"pack": {"chemistry": "lfp"}}
    data["protection"] = {"cell_undervoltage": {"fault": {"threshold": 1.5}}}
    error = _refused(data)
    assert error.key == "protection.cell_undervoltage.fault.threshold"
    assert "absolute minimum 2 of lfp cells" in str(error)


def test_a_temperature_fault_beyond_the_chemistry_is_refused() -> None:
    data = {"protection": {"overtemperature_charge": {"fault": {"threshold": 80.0}}}}
    assert _refused(data).key == "protection.overtemperature_charge.fault.threshold"


def test_a_charge_voltage_limit_above_the_overvoltage_fault_is_refused() -> None:
    error = _refused({"limits": {"charge_cell_voltage_v": 4.4}})
    assert error.key == "limits.charge_cell_voltage_v"
    assert "below protection.cell_overvoltage.alarm.threshold 4.2" in str(error)


def test_a_charge_voltage_limit_at_the_overvoltage_alarm_is_refused() -> None:
    assert _refused({"limits": {"charge_cell_voltage_v": 4.2}}).key == (
        "limits.charge_cell_voltage_v"
    )


def test_a_discharge_voltage_limit_below_the_undervoltage_alarm_is_refused() -> None:
    error = _refused({"limits": {"discharge_cell_voltage_v": 2.8}})
    assert error.key == "limits.discharge_cell_voltage_v"
    assert "above protection.cell_undervoltage.alarm.threshold 2.85" in str(error)


WARNING = (
    "protection.cell_overvoltage.warning.threshold 4.17 V minus its hysteresis 0.02 V (4.15 V)"
)


def test_a_charge_voltage_limit_inside_the_overvoltage_warning_is_refused() -> None:
    """A charger holding the CVL would end every full charge in the warning."""
    error = _refused({"limits": {"charge_cell_voltage_v": 4.16}})
    assert error.key == "limits.charge_cell_voltage_v"
    assert f"4.16 V must be at most {WARNING}" in str(error)


def test_the_charge_voltage_limit_is_judged_against_the_warnings_release_point() -> None:
    """The hysteresis widens the margin: the preset's 4.15 V no longer ends below a 0.05 V one."""
    data = {"protection": {"cell_overvoltage": {"warning": {"hysteresis": 0.05}}}}
    error = _refused(data)
    assert error.key == "limits.charge_cell_voltage_v"
    assert "4.15 V must be at most" in str(error) and "0.05 V (4.12 V)" in str(error)
    data["protection"]["cell_overvoltage"]["warning"]["threshold"] = 4.2  # release 4.15 V
    data["protection"]["cell_overvoltage"]["alarm"] = {"threshold": 4.22}
    assert parse_config(data).limits.charge_cell_voltage_v == 4.15


@pytest.mark.parametrize(
    ("table", "stops"),
    [
        ({"x": [4.0, 4.2], "y": [1.0, 0.0]}, "reaches zero at 4.2 V"),
        ({"x": [4.0, 4.16, 4.2], "y": [1.0, 0.0, 0.0]}, "reaches zero at 4.16 V"),
        ({"x": [4.0, 4.2], "y": [1.0, 0.1]}, "never reaches zero"),
    ],
)
def test_a_charge_current_taper_ending_inside_the_overvoltage_warning_is_refused(
    table: dict, stops: str
) -> None:
    """A charger following the CCL would take the highest cell into the warning."""
    error = _refused({"limits": {"charge": {"cell_voltage": table}}})
    assert error.key == "limits.charge.cell_voltage"
    assert f"{stops} but must by {WARNING}" in str(error)


def test_an_end_of_charge_inside_the_warning_may_be_run_anyway() -> None:
    table = {"x": [4.0, 4.2], "y": [1.0, 0.0]}
    data = {"limits": {"charge": {"cell_voltage": table}}}
    data["unsafe_override"] = ["limits.charge.cell_voltage"]
    config = parse_config(data)
    assert [r.key for r in config.unsafe] == ["limits.charge.cell_voltage"]
    assert config.limits.charge_end_cell_voltage == 4.2


def test_every_chemistry_ends_its_charge_where_the_overvoltage_warning_released() -> None:
    for chemistry in ("nmc", "lfp", "lto"):
        config = parse_config({"pack": {"chemistry": chemistry}})
        warning = config.protection.checks[Check.CELL_OVERVOLTAGE].levels[Level.WARNING]
        release = warning.threshold - warning.hysteresis + 1e-9
        assert config.limits.charge_cell_voltage_v <= release
        assert config.limits.charge_end_cell_voltage <= release


def _without(monkeypatch, check: str, *levels: str) -> None:
    """A protection preset without some levels (a file can only add to its preset)."""
    preset = load_preset("protection", "nmc")
    for level in levels:
        del preset[check][level]
    shipped = loader.load_preset

    def load(section: str, chemistry: str) -> dict:
        return preset if section == "protection" else shipped(section, chemistry)

    monkeypatch.setattr(loader, "load_preset", load)


def test_without_an_alarm_level_the_voltage_limit_is_judged_against_the_fault(monkeypatch) -> None:
    _without(monkeypatch, "cell_overvoltage", "warning", "alarm")
    config = parse_config({"limits": {"charge_cell_voltage_v": 4.22}})
    assert config.limits.charge_cell_voltage_v == 4.22  # below the 4.25 V fault
    error = _refused({"limits": {"charge_cell_voltage_v": 4.25}})
    assert "protection.cell_overvoltage.fault.threshold 4.25" in str(error)


def test_an_e2e_rule_that_matches_nothing_is_refused(tmp_path: Path) -> None:
    typo = "[[e2e]]\nmessage = '^CellVoltage_M\\d+$'\ncrc = \"{message}_CRC\"\n\n"
    error = _refused(_slave_mapping(tmp_path, typo), tmp_path)
    assert error.key == "ingest.slave_mapping"
    assert "CellVoltages_M00_CRC (CRC) and 23 more CRC signals are read without" in str(error)


def test_an_extra_e2e_rule_that_matches_nothing_is_refused(tmp_path: Path) -> None:
    shipped = resources.files("controller.mappings").joinpath("canbms_slaves.toml").read_text()
    entry = shipped[shipped.index("[[e2e]]") : shipped.index("[[rule]]")]
    stray = "[[e2e]]\nmessage = '^NoSuchMessage$'\ncounter = \"Counter\"\n\n"
    error = _refused(_slave_mapping(tmp_path, entry + stray), tmp_path)
    assert error.key == "ingest.slave_mapping"
    assert "[[e2e]] entry 2 (message = '^NoSuchMessage$') matches no message" in str(error)


def test_an_e2e_rule_checking_only_the_crc_leaves_the_counter_refused(tmp_path: Path) -> None:
    crc_only = "[[e2e]]\nmessage = '^(?:CellVoltages|Temperatures|ModuleStatus)_M\\d+$'\n"
    crc_only += 'crc = "{message}_CRC"\n\n'
    error = _refused(_slave_mapping(tmp_path, crc_only), tmp_path)
    assert error.key == "ingest.slave_mapping"
    assert "alive counter" in str(error) and "CRC" not in str(error).split(":")[1]


def test_a_staleness_timeout_of_ten_minutes_is_refused() -> None:
    error = _refused({"ingest": {"timeouts_ms": {"cell_voltage": 600_000}}})
    assert error.key == "ingest.timeouts_ms.cell_voltage"
    assert "600000 ms is above 500 ms" in str(error)  # the over-voltage fault's 500 ms delay


def test_the_ems_request_timeout_is_bounded_by_the_ems_timeout_fault() -> None:
    error = _refused({"ingest": {"timeouts_ms": {"ems_request": 400}}})
    assert error.key == "ingest.timeouts_ms.ems_request"
    assert "above 350 ms" in str(error)  # 150 ms threshold + 200 ms delay


def test_a_break_current_no_contactor_can_break_is_refused() -> None:
    error = _refused({"contactors": {"break_current_a": 100_000}})
    assert error.key == "contactors.break_current_a"
    assert f"above {MAX_BREAK_CURRENT_A:g} A" in str(error)


def test_a_slow_cycle_is_refused() -> None:
    error = _refused({"cycle_ms": 1000})
    assert error.key == "cycle_ms"
    assert f"above {MAX_CYCLE_MS:g} ms" in str(error)
    assert _build({"cycle_ms": MAX_CYCLE_MS}).config.cycle_ms == MAX_CYCLE_MS


def test_both_bus_roles_on_one_channel_are_refused() -> None:
    one = {"interface": "socketcan", "channel": "can0"}
    error = _refused({"buses": {"internal": one, "vehicle": one}})
    assert error.key == "buses.vehicle.channel"
    assert "also buses.internal" in str(error)


def test_a_third_bus_on_a_role_channel_is_refused() -> None:
    buses = {"internal": {}, "vehicle": {}, "charger": {"channel": "canbms-internal"}}
    data = {"buses": buses, "adapters": [{"type": "elcon", "max_current": 10}]}
    assert _refused(data).key == "buses.charger.channel"


def test_fd_with_a_classic_dbc_is_refused() -> None:
    error = _refused({"pack": {"fd": True}})
    assert error.key == "pack.fd"
    assert "describes classic CAN frames" in str(error)


def test_classic_with_an_fd_dbc_is_refused(tmp_path: Path) -> None:
    write_dbc(Topology(8, 12, 4, fd=True), tmp_path / "fd.dbc")
    error = _refused({"dbc": {"slaves": "fd.dbc"}}, tmp_path)
    assert error.key == "pack.fd"
    assert "describes CAN FD frames" in str(error)
    assert _build({"pack": {"fd": True}, "dbc": {"slaves": "fd.dbc"}}, tmp_path).overrides == ()


def test_an_fd_pack_on_an_internal_bus_without_fd_is_refused(tmp_path: Path) -> None:
    write_dbc(Topology(8, 12, 4, fd=True), tmp_path / "fd.dbc")
    data = {"pack": {"fd": True}, "dbc": {"slaves": "fd.dbc"}}
    data["buses"] = {"internal": {"fd": False}, "vehicle": {}}
    assert _refused(data, tmp_path).key == "buses.internal.fd"


def test_fewer_modules_than_the_dbc_describes_are_refused() -> None:
    error = _refused({"pack": {"modules": 6}})  # the shipped slave DBC has 8 modules
    assert error.key == "pack.modules"
    assert "describe 96 cell_voltage for 72 (6 modules x 12), 32 cell_temperature" in str(error)


def test_fewer_cells_per_module_than_the_dbc_describes_are_refused(tmp_path: Path) -> None:
    write_dbc(Topology(1, 16, 4), tmp_path / "s.dbc")
    data = {"pack": {"modules": 1, "cells_per_module": 14}, "dbc": {"slaves": "s.dbc"}}
    error = _refused(data, tmp_path)
    assert error.key == "pack.cells_per_module"


# -- the obvious siblings -----------------------------------------------------------------


def test_an_enabled_check_without_a_fault_level_is_refused(monkeypatch) -> None:
    _without(monkeypatch, "slave_timeout", "fault")
    error = _refused({})
    assert error.key == "protection.slave_timeout.fault"
    assert "never opens the contactors" in str(error)


def test_disabling_a_fault_of_the_catalogue_is_refused() -> None:
    error = _refused({"diagnosis": {"stage_exception": {"enabled": False}}})
    assert error.key == "diagnosis.stage_exception.enabled"
    _build({"diagnosis": {"e2e_reject_rate": {"enabled": False}}})  # a warning may be off


def test_every_chemistry_has_bounds_its_presets_respect() -> None:
    for chemistry in ("nmc", "lfp", "lto"):
        bounds = chemistry_bounds(chemistry)
        assert set(bounds) == {
            Check.CELL_OVERVOLTAGE,
            Check.CELL_UNDERVOLTAGE,
            Check.OVERTEMPERATURE_CHARGE,
            Check.UNDERTEMPERATURE_CHARGE,
            Check.OVERTEMPERATURE_DISCHARGE,
            Check.UNDERTEMPERATURE_DISCHARGE,
        }
        assert _build({"pack": {"chemistry": chemistry}}).overrides == ()


# -- the override -------------------------------------------------------------------------


def _first_events(controller: Controller) -> tuple[list, list]:
    state = controller.initial_state(0.0)
    first = controller.step(state, FrameBatch.empty(), 0.01)
    second = controller.step(first.state, FrameBatch.empty(), 0.02)
    return list(first.events), list(second.events)


def test_an_override_accepts_the_key_and_logs_it_at_the_first_step() -> None:
    data = {"cycle_ms": 1000, "unsafe_override": ["cycle_ms"]}
    controller = _build(data)
    assert controller.config.cycle_ms == 1000
    assert [r.key for r in controller.overrides] == ["cycle_ms"]
    first, second = _first_events(controller)
    logged = [e for e in first if e.diagnosis == "unsafe_override"]
    assert len(logged) == 1 and logged[0].level is Level.WARNING and logged[0].kind == "set"
    assert str(logged[0]).startswith("unsafe_override warning set: cycle_ms: 1000 ms is above")
    assert not [e for e in second if e.diagnosis == "unsafe_override"]


def test_a_safe_configuration_logs_no_override() -> None:
    first, _ = _first_events(Controller(default_config()))
    assert not [e for e in first if e.diagnosis == "unsafe_override"]


def test_an_override_of_a_database_rule_is_accepted_by_the_assembly() -> None:
    controller = _build({"pack": {"modules": 6}, "unsafe_override": ["pack.modules"]})
    assert [r.key for r in controller.overrides] == ["pack.modules"]
    text = banner(None, controller, None)
    assert "warning: unsafe_override: pack.modules: the DBCs describe 96 cell_voltage" in text


def test_an_override_that_accepts_nothing_is_an_error() -> None:
    error = _refused({"unsafe_override": ["cycle_ms"]})
    assert error.key == "unsafe_override[0]"
    assert "'cycle_ms' overrides nothing" in str(error)


def test_a_stale_override_of_a_database_rule_is_an_error() -> None:
    error = _refused({"unsafe_override": ["pack.fd"]})
    assert error.key == "unsafe_override[0]"


def test_an_override_is_listed_once() -> None:
    data = {"cycle_ms": 1000, "unsafe_override": ["cycle_ms", "cycle_ms"]}
    assert _refused(data).key == "unsafe_override"


def test_config_check_and_the_run_banner_warn_about_every_override(capsys, tmp_path) -> None:
    file = tmp_path / "canbms.toml"
    file.write_text(
        'unsafe_override = ["protection.ems_timeout.enabled", "contactors.break_current_a"]\n'
        "[protection.ems_timeout]\nenabled = false\n[contactors]\nbreak_current_a = 5000\n"
    )
    assert main(["config", "check", str(file)]) == 0
    err = capsys.readouterr().err
    assert "warning: unsafe_override: protection.ems_timeout.enabled: false" in err
    assert "warning: unsafe_override: contactors.break_current_a: 5000 A" in err
    lines = banner(str(file), Controller(load_config(file)), None).splitlines()
    assert sum("warning: unsafe_override:" in line for line in lines) == 2


def test_canbms_run_warns_and_logs_every_override_at_start(tmp_path: Path) -> None:
    """The banner warns; the first step's event reaches the log and the stored history."""
    file = tmp_path / "canbms.toml"
    file.write_text(
        'state_dir = "state"\nunsafe_override = ["contactors.break_current_a"]\n'
        '[buses.internal]\nchannel = "safety-run-internal"\n'
        '[buses.vehicle]\nchannel = "safety-run-vehicle"\n'
        "[contactors]\nbreak_current_a = 5000\n"
    )
    run = "from canbms.cli import main; raise SystemExit(main())"
    done = subprocess.run(
        [sys.executable, "-c", run, "run", "--config", str(file), "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "warning: unsafe_override: contactors.break_current_a: 5000 A is above" in done.stdout
    assert "unsafe_override warning set: contactors.break_current_a: 5000 A" in done.stderr
    store = Store.open(tmp_path / "state" / STATE_FILE)
    logged = [row for row in store.history() if row[1] == "unsafe_override"]
    store.close()
    assert len(logged) == 1 and logged[0][3].startswith("contactors.break_current_a: 5000 A")


def test_config_check_names_the_key_of_a_refusal(capsys, tmp_path) -> None:
    file = tmp_path / "canbms.toml"
    file.write_text("[contactors]\nbreak_current_a = 100000\n")
    assert main(["config", "check", str(file)]) != 0
    err = capsys.readouterr().err
    assert "error: contactors.break_current_a: 100000 A is above" in err
    assert 'unsafe_override = ["contactors.break_current_a"]' in err


# -- properties ---------------------------------------------------------------------------

NMC_MAX = chemistry_bounds("nmc")[Check.CELL_OVERVOLTAGE]
CVL = load_preset("limits", "nmc")["charge_cell_voltage_v"]
CHARGE_END = default_config().limits.charge_end_cell_voltage
HYSTERESIS = load_preset("protection", "nmc")["cell_overvoltage"]["warning"]["hysteresis"]
volts = st.floats(3.05, 4.6, allow_nan=False).map(lambda v: round(v, 3))


@given(warning=volts, alarm=volts, fault=volts)
def test_overvoltage_thresholds_load_exactly_when_ordered_and_inside_the_bounds(
    warning: float, alarm: float, fault: float
) -> None:
    levels = {"warning": warning, "alarm": alarm, "fault": fault}
    data = {"protection": {"cell_overvoltage": {k: {"threshold": v} for k, v in levels.items()}}}
    ends_released = max(CVL, CHARGE_END) <= warning - HYSTERESIS + 1e-9
    safe = warning < alarm < fault <= NMC_MAX and alarm > CVL and ends_released
    try:
        parse_config(data)
    except ConfigError as error:
        assert not safe
        keys = (
            r"protection\.cell_overvoltage\.\w+\.threshold"
            r"|limits\.charge_cell_voltage_v|limits\.charge\.cell_voltage"
        )
        assert re.fullmatch(keys, error.key)
    else:
        assert safe


@given(timeout=st.integers(1, 2000), charge=st.integers(0, 1000), discharge=st.integers(0, 1000))
def test_the_current_staleness_bound_follows_the_overcurrent_faults(
    timeout: int, charge: int, discharge: int
) -> None:
    delays = {"overcurrent_charge": charge, "overcurrent_discharge": discharge}
    data = {
        "protection": {c: {"fault": {"set_delay_ms": d}} for c, d in delays.items()},
        "ingest": {"timeouts_ms": {"pack_current": timeout}},
    }
    bound = max(min(charge, discharge), 10 * 10.0)  # ten cycles of 10 ms at the least
    try:
        parse_config(data)
    except ConfigError as error:
        assert error.key == "ingest.timeouts_ms.pack_current" and timeout > bound
    else:
        assert timeout <= bound


UNSAFE = {
    "cycle_ms": {"cycle_ms": 500},
    "contactors.break_current_a": {"contactors": {"break_current_a": 9000}},
    "protection.ems_timeout.enabled": {"protection": {"ems_timeout": {"enabled": False}}},
    "limits.charge_cell_voltage_v": {"limits": {"charge_cell_voltage_v": 4.3}},
    "limits.charge.cell_voltage": {"limits": {"charge": {"cell_voltage": {"x": [4], "y": [1]}}}},
    "ingest.timeouts_ms.cell_temperature": {"ingest": {"timeouts_ms": {"cell_temperature": 6e5}}},
}


@given(
    unsafe=st.lists(st.sampled_from(sorted(UNSAFE)), unique=True),
    overrides=st.lists(st.sampled_from(sorted(UNSAFE)), unique=True),
)
def test_a_configuration_loads_exactly_when_its_overrides_match_its_unsafe_keys(
    unsafe: list[str], overrides: list[str]
) -> None:
    data: dict[str, Any] = {"unsafe_override": overrides}
    for key in unsafe:
        data = merged(data, UNSAFE[key])
    try:
        config = parse_config(data)
    except ConfigError as error:
        assert set(unsafe) != set(overrides)
        stale = [f"unsafe_override[{overrides.index(k)}]" for k in overrides if k not in unsafe]
        assert error.key in set(unsafe) - set(overrides) or error.key in stale
    else:
        assert set(unsafe) == set(overrides)
        assert sorted(r.key for r in config.unsafe) == sorted(unsafe)
