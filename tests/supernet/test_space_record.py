"""Supernet checkpoints record their space (canonical YAML and hash) and rebuild exactly it;
YAML spaces train; checkpoints written before the YAML was recorded still load and resume."""

from __future__ import annotations

import pytest

from hwnas.errors import ConfigError
from spaces import space_hash
from supernet.checkpoint import read_checkpoint, write_checkpoint
from supernet.train import Trainer, load_supernet
from tests.helpers import tiny_config, tiny_space

pytestmark = pytest.mark.usefixtures("one_thread")


def _quiet(_msg: str) -> None:
    pass


def _short(**overrides):
    base = dict(epochs=1, qat_epochs=0, train_limit=64, batch_size=32, eval_every=0, max_steps=1)
    base.update(overrides)
    return tiny_config(**base)


@pytest.fixture(scope="module")
def yaml_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tinymb.yaml"
    path.write_text(tiny_space().to_yaml().replace("name: mobilenet", "name: tinymb", 1))
    return path


def test_checkpoint_records_yaml_and_hash(tmp_path):
    Trainer(_short(), tmp_path, progress=False, log=_quiet).run()
    meta, _ = read_checkpoint(tmp_path)
    rec = meta["space"]
    assert set(rec) == {"name", "kwargs", "yaml", "hash"}
    assert rec["name"] == "mobilenet" and rec["kwargs"]["stages"] == 2 and rec["kwargs"]["resolution"] == 28
    assert rec["hash"] == space_hash(tiny_space())
    net, _ = load_supernet(tmp_path)
    assert space_hash(net.space) == rec["hash"] and net.space.input_shape == (1, 28, 28)


def test_yaml_space_trains_and_is_rebuilt_from_the_checkpoint(tmp_path, yaml_file):
    Trainer(_short(space=str(yaml_file), space_kwargs={}), tmp_path, progress=False, log=_quiet).run()
    meta, _ = read_checkpoint(tmp_path)
    assert meta["space"]["name"] == "tinymb" and meta["space"]["kwargs"] == {}
    assert meta["space"]["hash"] == space_hash(tiny_space())  # the registered space it was written from
    yaml_file.rename(yaml_file.with_suffix(".moved"))  # the checkpoint alone rebuilds it
    try:
        net, _ = load_supernet(tmp_path)
        assert net.space.name == "tinymb" and space_hash(net.space) == meta["space"]["hash"]
        tr = Trainer(_short(space=str(yaml_file), space_kwargs={}), tmp_path, resume=True, progress=False, log=_quiet)
        assert tr.global_step == 1 and tr.space.name == "tinymb"
    finally:
        yaml_file.with_suffix(".moved").rename(yaml_file)


def test_yaml_space_of_another_input_is_refused(tmp_path, yaml_file):
    """The data are read at the space file's resolution and channels; its classes must be the data's."""
    other = tmp_path / "c5.yaml"
    other.write_text(yaml_file.read_text().replace("num_classes: 10", "num_classes: 5"))
    with pytest.raises(ConfigError) as info:
        Trainer(_short(space=str(other), space_kwargs={}), tmp_path / "run", progress=False, log=_quiet)
    msg = str(info.value)
    assert "5 classes" in msg and "10 classes" in msg and "fashion-mnist" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="takes no space arguments"):
        Trainer(_short(space=str(yaml_file), space_kwargs={"stages": 2}), tmp_path / "run", progress=False, log=_quiet)


def test_old_checkpoint_without_yaml_loads_and_resumes(tmp_path):
    """Checkpoints written before the space YAML was recorded hold only name and kwargs."""
    Trainer(_short(), tmp_path, progress=False, log=_quiet).run()
    meta, tensors = read_checkpoint(tmp_path)
    expected = meta["space"]["hash"]
    meta["space"] = {"name": meta["space"]["name"], "kwargs": meta["space"]["kwargs"]}
    meta.pop("format")
    write_checkpoint(tmp_path / "checkpoint.safetensors", tensors, meta)
    net, _ = load_supernet(tmp_path)
    assert space_hash(net.space) == expected
    Trainer(
        _short(max_steps=2), tmp_path, resume=True, progress=False, log=_quiet, config_override=_short(max_steps=2)
    ).run()
    meta, _ = read_checkpoint(tmp_path)
    assert meta["space"]["hash"] == expected and meta["space"]["yaml"]  # upgraded on the next save
    assert meta["state"]["global_step"] == 2
