"""Evaluators: the NAS-Bench-201 table, LUT latency adapters, composition, proxy training."""

from __future__ import annotations

import pytest

from hwnas.errors import ConfigError, HwnasError, UnknownNameError
from nas.search.evaluators import (
    CompositeEvaluator,
    LutLatencyEvaluator,
    ProxyTrainingEvaluator,
    TabularEvaluator,
    default_nb201_csv,
)
from spaces.builtin import nb201_arch_from_str

OPT = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def test_table_lookup(table, nb201_csv):
    arch = nb201_arch_from_str(OPT)
    v = table.evaluate(arch)
    assert v == {"cifar10_test_acc": pytest.approx(94.3733), "pixel3_latency_ms": pytest.approx(26.0105)}
    full = TabularEvaluator(nb201_csv)
    assert len(full) == 15625 and "cifar100_test_acc" in full.accuracy_columns
    assert "pixel3_latency_ms" in full.latency_columns and "index" not in full.columns
    assert full.column("cifar10_test_acc").max() == pytest.approx(94.3733)
    assert len(full.evaluate(arch)) == len(full.columns)


def test_table_errors(tmp_path, nb201_csv, monkeypatch):
    with pytest.raises(UnknownNameError, match="unknown NAS-Bench-201 column 'x'"):
        TabularEvaluator(nb201_csv, metrics=["x"])
    with pytest.raises(ConfigError, match="not found"):
        TabularEvaluator(tmp_path / "missing.csv.gz")
    monkeypatch.setenv("HWNAS_NB201_CSV", str(nb201_csv))
    assert default_nb201_csv() == nb201_csv
    monkeypatch.setenv("HWNAS_NB201_CSV", str(tmp_path / "nope.csv.gz"))
    with pytest.raises(ConfigError, match="HWNAS_NB201_CSV"):
        TabularEvaluator()
    with pytest.raises(HwnasError, match="not an nb201 cell"):
        TabularEvaluator(nb201_csv).evaluate({"stage1.depth": 2})
    with pytest.raises(ConfigError, match="does not provide"):
        TabularEvaluator(nb201_csv, metrics=["cifar10_test_acc"]).require(["pixel3_latency_ms"])


def test_lut_adapter_and_composite(table, nb201_space):
    class Lut:
        def predict(self, arch):
            return 1.5

    arch = nb201_space.sample(0)
    assert LutLatencyEvaluator(Lut()).evaluate(arch) == {"latency_ms": 1.5}
    ev = LutLatencyEvaluator(lambda a: 2.0 + len(a), metric="lut_ms", space=nb201_space)
    assert ev.evaluate(arch) == {"lut_ms": 8.0}
    both = CompositeEvaluator(table, ev)
    assert both.metrics == ("cifar10_test_acc", "pixel3_latency_ms", "lut_ms")
    assert set(both.evaluate(arch)) == set(both.metrics)
    with pytest.raises(ConfigError):
        LutLatencyEvaluator(42)


def test_proxy_training_is_real_and_deterministic():
    pytest.importorskip("torch")
    from spaces import create_space

    space = create_space("resnet", in_chans=1, num_classes=10, resolution=28)
    ev = ProxyTrainingEvaluator(space, train_size=128, val_size=64, batch_size=32, seed=0)
    try:
        arch = space.default()
        a, b = ev.evaluate(arch), ev.evaluate(arch)
    except HwnasError as exc:  # the Fashion-MNIST package is missing
        pytest.skip(str(exc))
    assert 0 <= a["proxy_acc"] <= 100 and a["params_m"] > 0
    assert a["proxy_acc"] == b["proxy_acc"]
    with pytest.raises(ConfigError, match="in_chans=1, resolution=28"):
        ProxyTrainingEvaluator(create_space("resnet"), train_size=8, val_size=8).evaluate(
            create_space("resnet").default()
        )


def test_proxy_data_never_touches_the_test_split(monkeypatch):
    """Proxy training and its validation come from disjoint parts of the training split."""
    import hwnas.datasets as datasets
    from nas.search.data import load_arrays

    splits: list[str] = []
    real = datasets.load_data

    def spy(name, split, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        splits.append(split)
        return real(name, split, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_data", spy)
    xtr, ytr, xval, yval = load_arrays("digits", 200, 100, seed=3)
    assert set(splits) == {"train"} and len(xtr) == 200 and len(xval) == 100
    rows = {x.tobytes() for x in xtr}
    assert not any(x.tobytes() in rows for x in xval[:50] if (xval[:50] != 0).any())
    with pytest.raises(ConfigError, match="training split holds"):
        load_arrays("digits", 2000, 1000)
