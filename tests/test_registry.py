"""The generic name registry: one registration per name, and unknown names suggest the closest ones."""

from __future__ import annotations

import pytest

from mrizoo._registry import Registry, close_matches, did_you_mean, suggestion_hint
from mrizoo.errors import InputError


def test_register_lookup_and_list() -> None:
    reg: Registry[int] = Registry("widget", field="widget")
    for i, name in enumerate(["poisson2d", "gaussian2d", "gaussian1d"]):
        reg.register(name, i)
    assert reg.lookup("gaussian1d") == 2 and "poisson2d" in reg and len(reg) == 3
    assert reg.names() == ["gaussian1d", "gaussian2d", "poisson2d"]
    assert reg.names("gauss*") == ["gaussian1d", "gaussian2d"]
    del reg["poisson2d"]
    assert "poisson2d" not in reg and list(reg) == ["gaussian2d", "gaussian1d"]


def test_bad_names_are_input_errors_with_suggestions() -> None:
    reg: Registry[str] = Registry("widget", field="widget")
    reg.register("gaussian2d", "g")
    with pytest.raises(InputError, match="already registered") as err:
        reg.register("gaussian2d", "again")
    assert err.value.field == "widget" and reg.lookup("gaussian2d") == "g"
    with pytest.raises(InputError, match="non-empty string"):
        reg.register("", "x")
    with pytest.raises(InputError, match=r"unknown widget 'gausian2d'; did you mean 'gaussian2d'\?"):
        reg.lookup("gausian2d")
    with pytest.raises(InputError, match="unknown widget") as err:
        reg.lookup("zzz")
    assert "did you mean" not in str(err.value) and "one of gaussian2d" in str(err.value)
    with pytest.raises(InputError, match="unknown widget"):
        reg.lookup(["unhashable"])  # type: ignore[arg-type]


def test_hints() -> None:
    assert close_matches("acceleraton", ["seed", "center_fraction", "acceleration"]) == ["acceleration", "center_fraction"]
    assert did_you_mean("acceleraton", ["acceleration", "seed"]) == "; did you mean 'acceleration'?"
    assert did_you_mean("xyz", ["acceleration"]) == ""
    assert suggestion_hint(["a", "b"]) == "; did you mean 'a', 'b'?" and suggestion_hint([]) == ""
