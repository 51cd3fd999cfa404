"""Slave DBCs the project did not write, ingested by configuration alone.

Each case is a TOML configuration plus a mapping file, built by the same builder the
controller uses; random frames decoded into the measured arrays must agree with cantools'
own decoding of the same payloads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ingest_support import batch, build_from_config, cell_voltage_frames, with_mux

from controller.config.ingest import (
    OPTIONAL_TARGETS,
    build_decoders,
    load_databases,
    parse_dbc_sources,
    parse_ingest,
)
from controller.config.pack import parse_pack
from controller.errors import ConfigError, MappingError
from controller.ingest.layout import compile_message
from controller.pack_view import build_view
from dbc.topology import Topology

HERE = Path(__file__).resolve().parent
Expected = list[tuple[str, int, float, bool]]  # (target, element, value, reported valid)


def _fox_cells(message: str, decoded: dict) -> Expected:
    """foxBMS 2 streams: cells and sensors numbered pack-wide in the signal names."""
    out: Expected = []
    for name, value in decoded.items():
        if m := re.fullmatch(r"CellVoltage_(\d+)", name):
            out.append(
                ("cell_voltage", int(m[1]), value * 0.001, not decoded[f"{name}_invalidFlag"])
            )
        elif m := re.fullmatch(r"CellTemperature_(\d+)", name):
            out.append(("cell_temperature", int(m[1]), value, not decoded[f"{name}_invalidFlag"]))
    return out


def _model3(message: str, decoded: dict) -> Expected:
    out: Expected = [
        ("cell_voltage", int(m[1]), value, True)
        for name, value in decoded.items()
        if (m := re.fullmatch(r"Cell(\d+)", name))
    ]
    for k, name in enumerate(("BattCellTempMin332", "BattCellTempMax332")):
        if name in decoded:
            out.append(("cell_temperature", k, decoded[name], True))
    return out


def _indexed(message: str, decoded: dict) -> Expected:
    if message == "CellBlock":
        valid = not decoded["BlockInvalid"]
        first = decoded["BlockIndex"] * 4
        return [
            ("cell_voltage", first + k, decoded[f"Voltage{k}"] * 0.001, valid) for k in range(4)
        ]
    first = decoded["ModuleId"] * 4
    return [("cell_temperature", first + k, decoded[f"Temp{k}"], True) for k in range(4)]


@dataclass(frozen=True)
class Case:
    config: str  # TOML; {corpus} and {tests} stand for the folders
    mapping: str  # written beside the configuration as slave.toml
    streams: tuple[str, ...]  # messages drawn for the cross-check
    expected: Callable[[str, dict], Expected]
    corpus: bool = True


FOXBMS_AFE = Case(
    config="""
[balancing]
enabled = false  # these modules take no balancing command

[pack]
modules = 18
cells_per_module = 12
sensors_per_module = 10

[dbc]
slaves = "{corpus}/foxbms.dbc"
sensor = ""

[ingest]
slave_mapping = "foxbms_afe"
sensor_mapping = "foxbms_ivt"
""",
    mapping="",
    streams=("AFE_CellVoltages", "AFE_CellTemperatures"),
    expected=_fox_cells,
)

# foxBMS 2 reporting its own string to a host: the f_ frames, a mapping written for them.
FOXBMS_HOST = Case(
    config="""
[balancing]
enabled = false  # these modules take no balancing command

[pack]
modules = 18
cells_per_module = 12
sensors_per_module = 10

[dbc]
slaves = "{corpus}/foxbms.dbc"

[ingest]
slave_mapping = "slave.toml"
""",
    mapping=r"""
[[source]]
message = '^f_Cell\w+$'
name = "foxbms"

[[rule]]
target = "cell_voltage"
message = '^f_CellVoltages$'
signal = '^CellVoltage_(?P<index>\d+)$'
unit_scale = 0.001
validity = "{signal}_invalidFlag"

[[rule]]
target = "cell_temperature"
message = '^f_CellTemperatures$'
signal = '^CellTemperature_(?P<index>\d+)$'
validity = "{signal}_invalidFlag"
""",
    streams=("f_CellVoltages", "f_CellTemperatures"),
    expected=_fox_cells,
)

# Tesla Model 3: 108 brick voltages multiplexed three per frame; the BMS sends only the
# lowest and highest temperature, and the pack current and voltages in its own frames.
MODEL3 = Case(
    config="""
[balancing]
enabled = false  # these modules take no balancing command

[pack]
modules = 2
cells_per_module = 54
sensors_per_module = 1

[dbc]
slaves = "{corpus}/Model3CAN.dbc"
sensor = ""

[ingest]
slave_mapping = "slave.toml"
sensor_mapping = "sensor.toml"
""",
    mapping=r"""
[[rule]]
target = "cell_voltage"
message = '^ID401CellVoltages$'
signal = '^Cell(?P<index>\d+)$'

[[rule]]
target = "cell_temperature"
message = '^ID332BattCellMinMax$'
signal = '^BattCellTempMin332$'

[[rule]]
target = "cell_temperature"
message = '^ID332BattCellMinMax$'
signal = '^BattCellTempMax332$'
offset = 1
""",
    streams=("ID401CellVoltages", "ID332BattCellMinMax"),
    expected=_model3,
)

MODEL3_SENSOR = r"""
[[rule]]
target = "pack_current"
message = '^ID132HVBattAmpVolt$'
signal = '^SmoothBattCurrent132$'

[[rule]]
target = "pack_voltage"
message = '^ID132HVBattAmpVolt$'
signal = '^BattVoltage132$'

[[rule]]
target = "link_voltage"
message = '^ID2B4PCS_dcdcRailStatus$'
signal = '^PCS_dcdcHvBusVolt$'
"""

# Cell and module numbers carried in a data byte (tests/data/indexed_slaves.dbc).
INDEXED = Case(
    config="""
[balancing]
enabled = false  # these modules take no balancing command

[pack]
modules = 4
cells_per_module = 12
sensors_per_module = 4

[dbc]
slaves = "{tests}/data/indexed_slaves.dbc"

[ingest]
slave_mapping = "slave.toml"
""",
    mapping=r"""
[[rule]]
target = "cell_voltage"
message = '^CellBlock$'
signal = '^Voltage(?P<index>\d)$'
index_signal = "BlockIndex"
index_stride = 4
unit_scale = 0.001
validity = "BlockInvalid"

[[rule]]
target = "cell_temperature"
message = '^TempBlock$'
signal = '^Temp(?P<index>\d)$'
index_signal = "ModuleId"
index_stride = "sensors_per_module"
""",
    streams=("CellBlock", "TempBlock"),
    expected=_indexed,
    corpus=False,
)

CASES = {"foxbms_afe": FOXBMS_AFE, "foxbms_host": FOXBMS_HOST, "model3": MODEL3, "indexed": INDEXED}


def _write(folder: Path, case: Case, corpus: Path | None) -> Path:
    config = case.config.replace("{corpus}", str(corpus)).replace("{tests}", str(HERE))
    (folder / "pack.toml").write_text(config, encoding="utf-8")
    (folder / "slave.toml").write_text(case.mapping, encoding="utf-8")
    (folder / "sensor.toml").write_text(MODEL3_SENSOR, encoding="utf-8")
    return folder / "pack.toml"


@pytest.fixture
def built(request, tmp_path):
    case = CASES[request.param]
    corpus = request.getfixturevalue("corpus_dir") if case.corpus else None
    return case, *build_from_config(_write(tmp_path, case, corpus))


def _frames(db, streams):
    """Random payloads of the streams' messages, each with one of its multiplexer values."""
    messages = [db.get_message_by_name(name) for name in streams]
    muxes = [[s.mux_value or 0 for s in compile_message(m).slots] for m in messages]

    @st.composite
    def frame(draw):
        k = draw(st.integers(0, len(messages) - 1))
        message = messages[k]
        payload = bytearray(draw(st.binary(min_size=message.length, max_size=message.length)))
        return message, with_mux(message, payload, draw(st.sampled_from(muxes[k])))

    return st.lists(frame(), min_size=1, max_size=40)


@pytest.mark.parametrize("built", list(CASES), indirect=True)
def test_third_party_streams_decode_like_cantools(built) -> None:
    case, build, pack, dbs = built
    decoder = build.decoders["internal"]
    assert not any("not available" in n for n in build.notices if "cell_" in n)

    @given(_frames(dbs["slaves"], case.streams))
    def check(frames):
        state = decoder.new_state()
        rows = [(m.frame_id, bytes(p), 0.001 * i) for i, (m, p) in enumerate(frames)]
        decoder.decode(batch(rows), state)
        want: dict[tuple[str, int], tuple[float, bool]] = {}
        for message, payload in frames:
            decoded = dbs["slaves"].decode_message(
                message.frame_id, bytes(payload), decode_choices=False
            )
            for target, index, value, valid in case.expected(message.name, decoded):
                if 0 <= index < len(state.measurements[target]):
                    want[(target, index)] = (value, valid)
        for (target, index), (value, valid) in want.items():
            array = state.measurements[target]
            assert array.value[index] == pytest.approx(value, rel=1e-9, abs=1e-9)
            assert bool(array.reported_valid[index]) is valid
        written = sum(
            int(np.isfinite(state.measurements[t].value).sum())
            for t in ("cell_voltage", "cell_temperature")
        )
        assert written == len(want)

    check()


@pytest.mark.parametrize("built", ["foxbms_afe", "model3"], indirect=True)
def test_optional_module_values_are_named_as_not_available(built) -> None:
    _, build, _, _ = built
    assert build.available["internal"].isdisjoint(OPTIONAL_TARGETS)
    for name in OPTIONAL_TARGETS:
        assert any(n.startswith(f"internal bus: {name}: no signal feeds it") for n in build.notices)


@pytest.mark.parametrize("built", ["foxbms_afe"], indirect=True)
def test_the_slave_dbc_provides_the_current_sensor(built) -> None:
    _, build, _, dbs = built
    message = dbs["slaves"].get_message_by_name("CS_IsabellenhuetteIvtString0Curr")
    signals = {s.name: 0 for s in message.signals}
    payload = message.encode({**signals, "IVT_Result_I": -123_456}, strict=False)
    state = build.decoders["internal"].new_state()
    build.decoders["internal"].decode(batch([(message.frame_id, payload, 1.0)]), state)
    assert state.measurements["pack_current"].value[0] == pytest.approx(-123.456)


def test_foxbms_afe_with_the_default_sensor_dbc_builds(tmp_path, corpus_dir) -> None:
    config = FOXBMS_AFE.config.replace('sensor = ""\n', "").replace(
        'sensor_mapping = "foxbms_ivt"\n', ""
    )
    path = tmp_path / "pack.toml"
    path.write_text(config.replace("{corpus}", str(corpus_dir)), encoding="utf-8")
    build, _, _ = build_from_config(path)
    notices = "\n".join(build.notices)
    assert "0x521: decoded as IVT_Result_I (sensor)" in notices
    assert "ignored: CS_IsabellenhuetteIvtString0Curr (slaves)" in notices
    assert re.search(r"0x525: .* differ; nothing maps them, so it is ignored", notices)
    assert {"pack_current", "pack_voltage", "link_voltage"} <= build.available["internal"]


TIE_SENSOR = r"""
[[rule]]
target = "pack_current"
message = '^(?:IVT_Result_I|CS_IsabellenhuetteIvtString0Curr)$'
signal = '^(?:IVT_I_Value|IVT_Result_I)$'
unit_scale = 0.001

[[rule]]
target = "pack_voltage"
message = '^IVT_Result_U1$'
signal = '^IVT_U1_Value$'

[[rule]]
target = "link_voltage"
message = '^IVT_Result_U2$'
signal = '^IVT_U2_Value$'

[[e2e]]
message = '^IVT_Result_(?P<quantity>I|U1|U2)$'
counter = "IVT_{quantity}_Counter"

[[e2e]]
message = '^CS_IsabellenhuetteIvtString0Curr$'
counter = "IVT_MsgCount_Result_I"
"""


@pytest.mark.parametrize(
    ("provides", "decoded_as"),
    [("", None), ('"ivt_s.dbc"', "IVT_Result_I (sensor)"), ('"slaves"', "CS_")],
)
def test_a_frame_both_dbcs_feed_needs_provides(tmp_path, corpus_dir, provides, decoded_as):
    config = FOXBMS_AFE.config.replace('sensor = ""\n', "")
    config = config.replace('"foxbms_ivt"', '"sensor.toml"')
    if provides:
        config = config.replace(
            "[ingest]", f"provides = {{ IVT_Result_I = {provides} }}\n\n[ingest]"
        )
    if provides == '"slaves"':
        config = config.replace("IVT_Result_I =", "CS_IsabellenhuetteIvtString0Curr =")
    path = tmp_path / "pack.toml"
    path.write_text(config.replace("{corpus}", str(corpus_dir)), encoding="utf-8")
    (tmp_path / "sensor.toml").write_text(TIE_SENSOR, encoding="utf-8")
    if decoded_as is None:
        with pytest.raises(
            MappingError, match=r"0x521 .* name the one to decode in \[dbc\] provides"
        ):
            build_from_config(path)
        return
    build, _, _ = build_from_config(path)
    assert f"0x521: decoded as {decoded_as}" in "\n".join(build.notices)


def test_provides_must_name_a_configured_dbc(tmp_path, corpus_dir) -> None:
    config = FOXBMS_AFE.config.replace(
        'sensor = ""\n', 'provides = { IVT_Result_I = "nope.dbc" }\n'
    )
    path = tmp_path / "pack.toml"
    path.write_text(config.replace("{corpus}", str(corpus_dir)), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        build_from_config(path)
    assert info.value.key == "dbc.provides.IVT_Result_I"


def test_mandatory_quantities_must_be_fed(tmp_path, corpus_dir) -> None:
    config = FOXBMS_AFE.config.replace('sensor_mapping = "foxbms_ivt"\n', "")
    path = tmp_path / "pack.toml"
    path.write_text(config.replace("{corpus}", str(corpus_dir)), encoding="utf-8")
    with pytest.raises(MappingError, match="target pack_current: element 0 of 1 is fed by no"):
        build_from_config(path)


@pytest.mark.parametrize("built", ["indexed"], indirect=True)
def test_absent_module_values_never_age_a_module(built) -> None:
    _, build, pack, dbs = built
    decoder = build.decoders["internal"]
    state = decoder.new_state()
    message = dbs["slaves"].get_message_by_name("CellBlock")
    rows = [
        (
            message.frame_id,
            message.encode(
                {"BlockIndex": b, **{f"Voltage{k}": 3700 for k in range(4)}, "BlockInvalid": 0}
            ),
            1.0,
        )
        for b in range(pack.cells // 4)
    ]
    decoder.decode(batch(rows), state)
    ingest = parse_ingest({})
    view = build_view(state.measurements, pack, ingest, now=1.1)
    assert np.allclose(view.module_age, 0.1)
    assert view.module_errors == {}
    later = build_view(state.measurements, pack, ingest, now=2.0)
    assert not later.cell_voltage_valid.any()  # what is mapped and stops still goes stale


def test_mapping_paths_resolve_against_the_configuration(tmp_path) -> None:
    (tmp_path / "mine.toml").write_text("", encoding="utf-8")
    ingest = parse_ingest({"slave_mapping": "mine.toml"}, base_dir=tmp_path)
    assert ingest.slave_mapping == str((tmp_path / "mine.toml").resolve())
    with pytest.raises(ConfigError) as info:
        parse_ingest({"sensor_mapping": "absent.toml"}, base_dir=tmp_path)
    assert info.value.key == "ingest.sensor_mapping"


def test_a_mapped_status_that_never_arrives_still_ages_its_module() -> None:
    pack = parse_pack({})
    sources = parse_dbc_sources({})
    dbs, _ = load_databases(sources)
    build = build_decoders(pack, parse_ingest({}), dbs["slaves"], dbs["sensor"], dbs["master"])
    decoder = build.decoders["internal"]
    assert "module_voltage" in decoder.available and not build.notices
    state = decoder.new_state()
    topology = Topology(pack.modules, pack.cells_per_module, pack.sensors_per_module)
    cells = np.full(pack.cells, 3.7)
    frames = cell_voltage_frames(dbs["slaves"], topology, cells, cells < 0, {}, 1.0)
    decoder.decode(batch(frames), state)
    view = build_view(state.measurements, pack, parse_ingest({}), now=1.1)
    assert view.cell_voltage_valid.all()
    assert np.isinf(view.module_age).all()
