"""Property tests (hypothesis) of sample / mutate / crossover / encode / validate."""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from spaces import create_space

NAMES = ["nb201", "mobilenet", "spaceevo", "resnet", "hhnas"]


@functools.cache
def space(name):
    return create_space(name) if name == "nb201" else create_space(name, in_chans=1, num_classes=10, resolution=28)


names = st.sampled_from(NAMES)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
FAST = settings(max_examples=60, deadline=None)


@FAST
@given(names, seeds)
def test_sample_is_valid_and_deterministic(name, seed):
    s = space(name)
    a = s.sample(seed)
    assert s.contains(a)
    assert s.sample(seed) == a


@FAST
@given(names, seeds, seeds)
def test_mutate_yields_a_different_valid_arch(name, seed, mseed):
    s = space(name)
    a = s.sample(seed)
    m = s.mutate(a, mseed)
    assert m != a and s.contains(m)
    assert s.mutate(a, mseed) == m


@FAST
@given(names, seeds, seeds, seeds)
def test_crossover_is_valid_and_inherits(name, s1, s2, cseed):
    s = space(name)
    a, b = s.sample(s1), s.sample(s2)
    c = s.crossover(a, b, cseed)
    assert s.contains(c)
    for path, value in c.items():
        if path in a and path in b:
            assert value == a[path] or value == b[path]
    assert s.crossover(a, a, cseed) == a


@FAST
@given(names, seeds, seeds)
def test_encode_is_fixed_length_and_injective(name, s1, s2):
    s = space(name)
    a, b = s.sample(s1), s.sample(s2)
    ea, eb = s.encode(a), s.encode(b)
    assert ea.shape == eb.shape == (len(s.decisions()),)
    assert (a == b) == (ea.tobytes() == eb.tobytes())
    assert s.encode(a, one_hot=True).sum() == len(a)


@FAST
@given(names, seeds, st.data())
def test_validate_rejects_any_corrupted_value(name, seed, data):
    s = space(name)
    a = s.sample(seed)
    path = data.draw(st.sampled_from(sorted(a)))
    bad = dict(a)
    bad[path] = "not-an-option"
    assert not s.contains(bad)
    missing = dict(a)
    del missing[path]
    assert not s.contains(missing)


@FAST
@given(names, seeds)
def test_rollout_from_any_prefix_completes(name, seed):
    s = space(name)
    a = s.sample(seed)
    order = [d.path for d in s.active_decisions(a)]
    prefix = {p: a[p] for p in order[: len(order) // 2]}
    nxt = s.next_decision(prefix)
    assert nxt is not None and nxt.path == order[len(order) // 2]
    done = s.complete(prefix, seed)
    assert s.contains(done) and all(done[p] == v for p, v in prefix.items())
