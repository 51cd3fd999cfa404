"""Every declared bound is enforced by the loader and named in its error, for any value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.balancing import BalancingConfig
from controller.canopen_node.config import BatteryNodeConfig
from controller.config.declare import fields_of, load, setting_of
from controller.config.pack import PackConfig
from controller.contactors import ContactorConfig
from controller.errors import ConfigError

BOUNDED = [
    (section, f.name, tp, setting_of(f))
    for section in (PackConfig, ContactorConfig, BalancingConfig, BatteryNodeConfig)
    for f, tp in fields_of(section)
    if tp in (int, float) and (setting_of(f).ge is not None or setting_of(f).le is not None)
]


@pytest.mark.parametrize(
    ("section", "key", "tp", "meta"), BOUNDED, ids=[f"{s.__name__}.{k}" for s, k, *_ in BOUNDED]
)
@given(data=st.data())
def test_values_inside_the_bounds_load_and_outside_fail_naming_the_key(
    section, key, tp, meta, data
) -> None:
    low = meta.ge if meta.ge is not None else -1e9
    high = meta.le if meta.le is not None else 1e9
    inside = (
        data.draw(st.integers(int(low), int(high)))
        if tp is int
        else data.draw(st.floats(low, high, allow_nan=False))
    )
    assert getattr(load(section, {key: inside}, "s"), key) == inside
    outside = data.draw(st.sampled_from([b for b in (low - 1, high + 1) if abs(b) < 1e9] or [None]))
    if outside is None:
        return
    with pytest.raises(ConfigError) as info:
        load(section, {key: int(outside) if tp is int else float(outside)}, "s")
    assert info.value.key == f"s.{key}"


@pytest.mark.parametrize(("section", "key", "tp", "meta"), BOUNDED[:6])
def test_wrong_types_are_refused_naming_the_key(section, key, tp, meta) -> None:
    for wrong in ("1", True, [1]):
        with pytest.raises(ConfigError) as info:
            load(section, {key: wrong}, "s")
        assert info.value.key == f"s.{key}"
