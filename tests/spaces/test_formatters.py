"""The formatter registry: a space's arch formatter keeps its name through YAML."""

from __future__ import annotations

import pytest

from hwnas.errors import ConfigError, SpaceDefinitionError
from spaces import Block, Choice, Sequential, Space, create_space, register_formatter, space_from_dict, space_to_dict
from spaces.formatters import formatter_name, get_formatter, list_formatters


def _widths(space, arch):
    return "w" + "-".join(str(v) for v in arch.values())


def _space(formatter):
    body = Sequential({"a": Block("conv_bn_act", out=Choice([8, 16])), "b": Block("conv_bn_act", out=Choice([8, 16]))})
    return Space("fmt", body, resolution=8, formatter=formatter)


def test_nb201_registers_its_formatter():
    nb = create_space("nb201")
    assert "nb201" in list_formatters() and formatter_name(nb.formatter) == "nb201"
    again = space_from_dict(space_to_dict(nb))
    assert again.formatter is get_formatter("nb201") and again.describe(again.default()) == nb.describe(nb.default())


def test_a_registered_formatter_round_trips():
    register_formatter("test-widths")(_widths)
    register_formatter("test-widths")(_widths)  # the same function again is fine
    space = _space(_widths)
    data = space_to_dict(space)
    assert data["formatter"] == "test-widths"
    again = space_from_dict(data)
    assert again.formatter is _widths and again.describe({"a.out": 16, "b.out": 8}) == "w16-8"
    with pytest.raises(ConfigError, match="already registered"):
        register_formatter("test-widths")(lambda s, a: "")


def test_unregistered_and_unknown_formatters_are_one_line_errors():
    with pytest.raises(SpaceDefinitionError, match="its custom formatter has no YAML form"):
        space_to_dict(_space(lambda s, a: "x"))
    data = space_to_dict(_space(None))
    with pytest.raises(ConfigError, match=r"my.yaml: formatter: unknown formatter 'nope' \(known: .*nb201"):
        space_from_dict({**data, "formatter": "nope"}, "my.yaml")
