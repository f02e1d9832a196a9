"""Resource bounds of the DSL: Repeat depth, unfolded size, expression evaluation, constraint names,
and a size too large to print (issue 19)."""

from __future__ import annotations

import time

import pytest

from hwnas.errors import HwnasError, SpaceDefinitionError
from spaces import Block, Choice, Constraint, Derived, Repeat, Sequential, Space
from spaces._expr import MAX_INT_BITS, Expression
from spaces._nodes import MAX_EXTENT, MAX_REPEAT_DEPTH
from spaces._space import ENUMERATE_LIMIT, format_count


def _conv(**kw):
    return Block("conv_bn_act", out=kw.pop("out", 8), **kw)


def test_repeat_depth_is_bounded_at_construction():
    Repeat(_conv(), MAX_REPEAT_DEPTH)  # the bound itself is allowed
    start = time.perf_counter()
    with pytest.raises(SpaceDefinitionError, match="Repeat depth 1000000 exceeds the maximum of 1000"):
        Repeat(_conv(), 1_000_000)
    with pytest.raises(SpaceDefinitionError, match="exceeds the maximum"):
        Repeat(_conv(), Choice([1, 2, MAX_REPEAT_DEPTH + 1]))
    assert time.perf_counter() - start < 30  # a hang guard (the bound is checked, not the speed)


def test_nested_repeats_are_bounded_by_the_unfolded_size():
    with pytest.raises(SpaceDefinitionError, match=f"more than {MAX_EXTENT:,} decisions and blocks"):
        Repeat(Repeat(_conv(out=Choice([8, 16])), 1000), 1000)
    with pytest.raises(SpaceDefinitionError, match="decisions and blocks"):
        Sequential({f"s{i}": Repeat(_conv(out=Choice([8, 16])), 1000) for i in range(60)})


@pytest.mark.parametrize(
    "source, problem",
    [
        ("9 ** 9 ** 9 > 0", "larger than"),
        ("2 ** 5000", "larger than"),
        ("'a' * 10 ** 9", "repeating a str"),
        ("10 ** 9 * 'ab'", "repeating a str"),
        ("[1] * 10 ** 9", "repeating a list"),
        ("(2 ** 1000) * (2 ** 1000)", "more than"),
        ("'%*d' % (100000000, 1)", "string formatting"),
        ("abs(-2) ** 100000", "larger than"),
    ],
)
def test_expression_evaluation_is_bounded(source, problem):
    start = time.perf_counter()
    with pytest.raises(SpaceDefinitionError, match=problem):
        Expression(source).evaluate(lambda name: 1)
    assert time.perf_counter() - start < 30  # a hang guard (the bound is checked, not the speed)


@pytest.mark.parametrize("source", ["-" * 20_000 + "1", "(" * 500 + "1" + ")" * 500, "a\x00b", "lambda: 1"])
def test_malformed_expressions_are_definition_errors(source):
    with pytest.raises(SpaceDefinitionError):
        Expression(source)


def test_bounded_expressions_still_compute():
    assert Expression("2 ** 10 * 3").evaluate(lambda n: 0) == 3072
    assert Expression("'ab' * 3").evaluate(lambda n: 0) == "ababab"
    assert Expression(f"2 ** {MAX_INT_BITS - 1} > 0").evaluate(lambda n: 0) is True
    assert Expression("x % 4").evaluate(lambda n: 10) == 2


def test_huge_constraint_fails_quickly_when_sampling():
    space = Space("s", Sequential({"a": _conv(out=Choice([8, 16]))}), constraints=[Constraint("9 ** 9 ** 9 > a.out")])
    start = time.perf_counter()
    with pytest.raises(SpaceDefinitionError, match="out of bounds"):
        space.sample(0)
    assert time.perf_counter() - start < 30  # a hang guard (the bound is checked, not the speed)


def test_derived_value_out_of_bounds_is_a_definition_error():
    body = Sequential({"a": Block("conv_bn_act", out=Derived("8 * 2 ** 4096"))})
    with pytest.raises(SpaceDefinitionError, match="out of bounds"):
        Space("d", body).sample(0)


def test_constraint_naming_no_decision_is_an_error():
    body = Sequential({"a": _conv(out=Choice([8, 16])), "b": _conv(out=Choice([8, 16]))})
    with pytest.raises(SpaceDefinitionError, match=r"reads 'a.outt', which is not a decision.*did you mean 'a.out'"):
        Space("c", body, constraints=[Constraint("b.out >= a.outt")])
    # decisions and the root names are fine; the constraint is applied
    space = Space("c", body, constraints=[Constraint("b.out >= a.out"), Constraint("resolution >= 8")])
    assert space.size() == 3
    assert all(a["b.out"] >= a["a.out"] for a in space.enumerate())


def test_constrained_size_error_speaks_to_every_user():
    body = Sequential({f"s{i}": _conv(out=Choice([8, 16, 24, 32])) for i in range(12)})
    space = Space("big", body, constraints=[Constraint("s1.out >= s0.out")])
    with pytest.raises(HwnasError) as err:
        space.size()
    assert "size(" not in str(err.value) and "too many to count" in str(err.value)
    with pytest.raises(HwnasError, match="enumeration limit"):
        next(space.enumerate(limit=10 * ENUMERATE_LIMIT))  # the limit cannot be raised past the maximum


def test_format_count_is_bounded():
    assert format_count(15625) == "15625"
    assert format_count(2**100_000) == "9.990e+30102"  # 30,103 digits: str() would refuse it
    assert format_count(10**20) == "1.000e+20"


def _huge_space() -> Space:
    stages = {f"s{i}": Repeat(_conv(out=Choice(list(range(8, 18)))), 1000) for i in range(5)}
    return Space("huge", Sequential(stages), resolution=8)


def test_spaces_show_prints_a_bounded_size(tmp_path, capsys):
    from nas.cli import main

    space = _huge_space()
    assert len(format_count(space.size())) < 20  # 10**5000: more digits than Python prints
    path = tmp_path / "huge.yaml"
    path.write_text(space.to_yaml())
    assert main(["spaces", "show", str(path), "--sample", "0"]) == 0
    out = capsys.readouterr().out
    assert "size 1.000e+5000" in out
    assert main(["spaces", "show", str(path), "--sample", "0", "--json"]) == 0
    assert '"size": "1.000e+5000"' in capsys.readouterr().out


def test_listing_the_blocks_of_a_huge_space_is_bounded():
    """A walk over every decision resolves at most MAX_RESOLVED_BLOCKS block variants, then one clear error."""
    from hwnas.errors import SpaceTooLargeError

    start = time.perf_counter()
    with pytest.raises(SpaceTooLargeError, match="space 'huge': the space has too many block variants"):
        _huge_space().enumerate_blocks()
    assert time.perf_counter() - start < 60


def test_builtin_spaces_list_their_blocks_well_within_the_bound():
    from spaces import create_space
    from spaces._nodes import MAX_RESOLVED_BLOCKS, _Walk

    for name in ("mobilenet", "resnet", "spaceevo", "hhnas", "nb201"):
        space = create_space(name)
        walk = _Walk(choose=lambda d, st: list(d.options), record_all=False)
        space.body.walk(walk, space._root_state(), None)
        assert walk.resolved * 4 < MAX_RESOLVED_BLOCKS, name
