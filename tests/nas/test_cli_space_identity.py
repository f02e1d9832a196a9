"""One space description across commands: a YAML space runs through every command; a
checkpoint or LUT made for another space is refused in one line naming both hashes.

Mistakes that fail before any work are checked in process (``nas.cli.main``); the flows run
the real command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nas.cli import main
from spaces import load_space, space_hash

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "latency_lut"))
from lut_test_helpers import TINY_SPACE_YAML, write_fast_target  # noqa: E402

from tests.helpers import TINY_MOBILENET as TINY_MB  # noqa: E402

TRAIN = [
    "--data",
    "fashion-mnist",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--train-limit",
    "64",
    "--test-limit",
    "32",
    "--bn-calib-batches",
    "1",
    "--eval-every",
    "0",
    "--threads",
    "1",
    "--max-steps",
    "2",
    "--no-progress",
]


def _one_line(res) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def _main_error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from spaces import create_space

    root = tmp_path_factory.mktemp("spaces")
    mb = create_space("mobilenet", in_chans=1, num_classes=10, resolution=28, **TINY_MB).to_yaml()
    (root / "tinymb.yaml").write_text(mb.replace("name: mobilenet", "name: tinymb", 1))
    (root / "other_mb.yaml").write_text(mb.replace("choice: [3, 5]", "choice: [3, 7]"))
    (root / "tiny.yaml").write_text(TINY_SPACE_YAML)
    (root / "tiny_k7.yaml").write_text(TINY_SPACE_YAML.replace("kernel: {choice: [3, 5]}", "kernel: {choice: [3, 7]}"))
    write_fast_target(root, "int8", name="fast-int8")
    return root


@pytest.fixture(scope="module")
def trained(files):
    """A supernet over the YAML space, two steps of training (the real command)."""
    from tests.helpers import run_cli

    out = files / "run"
    res = run_cli("train-supernet", "--space", str(files / "tinymb.yaml"), *TRAIN, "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


def test_yaml_space_show(run_nas, files):
    res = run_nas("spaces", "show", str(files / "tinymb.yaml"), "--json", "--sample", "1")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["name"] == "tinymb"
    res = run_nas("spaces", "show", "mobilenet", "--space-args", json.dumps(TINY_MB), "--resolution", "28", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["input"] == [3, 28, 28]


def test_yaml_supernet_checkpoint_records_and_rebuilds_its_space(run_nas, files, trained, capsys):
    from supernet.checkpoint import read_checkpoint

    meta, _ = read_checkpoint(trained)
    h = space_hash(load_space(files / "tinymb.yaml"))
    assert meta["space"]["hash"] == h and meta["space"]["name"] == "tinymb"
    res = run_nas("eval-subnet", "--checkpoint", str(trained), "--arch", "smallest", "--test-limit", "32", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["space"] == "tinymb"
    # the registered space the YAML was written from is the same space (shape defaults to the checkpoint's)
    capsys.readouterr()
    assert (
        main(
            [
                "eval-subnet",
                "--checkpoint",
                str(trained),
                "--arch",
                "largest",
                "--test-limit",
                "32",
                "--json",
                "--space",
                "mobilenet",
                "--space-args",
                json.dumps(TINY_MB),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["space"] == "tinymb"


def test_checkpoint_of_another_space_is_refused(run_nas, files, trained, capsys):
    h = space_hash(load_space(files / "tinymb.yaml"))
    other = space_hash(load_space(files / "other_mb.yaml"))
    msg = _one_line(
        run_nas(
            "eval-subnet", "--checkpoint", str(trained), "--arch", "largest", "--space", str(files / "other_mb.yaml")
        )
    )
    assert h in msg and other in msg and "checkpoint" in msg
    msg = _main_error(
        capsys, "train-supernet", "--resume", "--out", str(trained), "--space", str(files / "other_mb.yaml")
    )
    assert h in msg and other in msg
    msg = _main_error(
        capsys,
        "train-supernet",
        "--resume",
        "--out",
        str(trained),
        "--space",
        "mobilenet",
        "--space-args",
        json.dumps({**TINY_MB, "kernels": [3]}),
    )
    assert h in msg and "mobilenet (hash " in msg
    msg = _main_error(
        capsys, "eval-subnet", "--checkpoint", str(trained), "--arch", "largest", "--space-args", json.dumps(TINY_MB)
    )
    assert "need --space" in msg


def test_yaml_space_of_another_input_than_the_data(files, tmp_path, capsys):
    c5 = tmp_path / "c5.yaml"  # the data are read at the file's input size, but its classes are the data's
    c5.write_text((files / "tinymb.yaml").read_text().replace("num_classes: 10", "num_classes: 5"))
    msg = _main_error(capsys, "train-supernet", "--space", str(c5), *TRAIN, "--out", str(tmp_path / "run"))
    assert "5 classes" in msg and "10 classes" in msg and not (tmp_path / "run").exists()


def test_yaml_space_search_proxy(run_nas, files):
    res = run_nas(
        "search",
        "--space",
        str(files / "tinymb.yaml"),
        "--searcher",
        "random",
        "--budget",
        "1",
        "--train-size",
        "32",
        "--epochs",
        "1",
        "--seed",
        "0",
        "--json",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["space"] == "tinymb" and out["best"] is not None


@pytest.mark.slow  # measures blocks and networks: ~15 s on two idle cores, more on a busy machine
def test_yaml_space_lut_and_lut_of_another_space(run_nas, files):
    lut = files / "lut.db"
    target = str(files / "fast-int8.yaml")
    res = run_nas(
        "profile",
        "--space",
        str(files / "tiny.yaml"),
        "--target",
        target,
        "--out",
        str(lut),
        "--archs",
        "2",
        "--seed",
        "0",
        "--networks",
        "0",
        "--retry-passes",
        "0",
        "--no-progress",
    )
    assert res.returncode == 0, res.stderr
    h, other = space_hash(load_space(files / "tiny.yaml")), space_hash(load_space(files / "tiny_k7.yaml"))
    # without --space, validate uses the space the LUT records
    res = run_nas(
        "lut",
        "validate",
        "--lut",
        str(lut),
        "--target",
        target,
        "--n",
        "2",
        "--seed",
        "0",
        "--passes",
        "1",
        "--remeasure",
        "0",
        "--json",
        "--no-progress",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["space"] == "tiny"
    shown = json.loads(run_nas("lut", "show", str(lut), "--json").stdout)
    assert [(s["name"], s["hash"]) for s in shown["spaces"]] == [("tiny", h)]
    msg = _one_line(
        run_nas(
            "lut",
            "validate",
            "--lut",
            str(lut),
            "--space",
            str(files / "tiny_k7.yaml"),
            "--target",
            target,
            "--n",
            "2",
            "--no-progress",
        )
    )
    assert h in msg and other in msg and "lacks" in msg and "_k7_" in msg  # the missing blocks are named
    msg = _one_line(run_nas("lut", "show", str(lut), "--space", str(files / "tiny_k7.yaml")))
    assert h in msg and other in msg


def test_export_blocks_with_space_args(run_nas, tmp_path):
    res = run_nas(
        "lut",
        "export-blocks",
        "--space",
        "mobilenet",
        "--space-args",
        json.dumps({**TINY_MB, "depths": [1], "kernels": [3], "expands": [2.0], "width_mults": [0.5]}),
        "--in-chans",
        "1",
        "--resolution",
        "28",
        "--num-classes",
        "10",
        "--archs",
        "1",
        "--networks",
        "0",
        "--formats",
        "int8_nhwc",
        "--out",
        str(tmp_path / "blocks"),
        "--no-progress",
    )
    assert res.returncode == 0, res.stderr
    rec = json.loads((tmp_path / "blocks" / "manifest.json").read_text())["space"]
    from latency_lut.manifest import space_from_record

    assert rec["hash"] in res.stdout and space_hash(space_from_record(rec)) == rec["hash"]
    assert rec["input_shape"] == [1, 28, 28] and rec["kwargs"]["stages"] == 2


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["spaces", "show", "mobilenet", "--space-args", "{bad"], "--space-args is not valid JSON"),
        (["spaces", "show", "mobilenet", "--space-args", "[2, 3]"], "must be a JSON object"),
        (["spaces", "show", "mobilenet", "--space-args", '{"stagez": 2}'], "takes no argument 'stagez'"),
        (["spaces", "show", "mobilenet", "--space-args", '{"resolution": 28}', "--resolution", "32"], "disagree"),
        (["spaces", "show", "{files}/tiny.yaml", "--space-args", "{}"], "does not apply to a YAML space"),
        (["spaces", "show", "{files}/tiny.yaml", "--resolution", "32"], "does not apply to a YAML space"),
        (
            [
                "lut",
                "export-blocks",
                "--space",
                "{files}/tiny.yaml",
                "--space-args",
                '{"stages": 2}',
                "--out",
                "{tmp}/b",
            ],
            "does not apply to a YAML space",
        ),
        (
            [
                "profile",
                "--space",
                "resnet",
                "--space-args",
                '{"stages": 2}',
                "--target",
                "cpu-ort-int8",
                "--out",
                "{tmp}/x.db",
            ],
            "takes no argument 'stages'",
        ),
        (
            ["train-supernet", "--space", "{files}/tiny.yaml", "--space-args", "{}", "--out", "{tmp}/run"],
            "does not apply to a YAML space",
        ),
        (
            ["train-supernet", "--space", "mobilenet", "--space-args", '{"stagez": 2}', "--out", "{tmp}/run"],
            "takes no argument 'stagez'",
        ),
        (["search", "--space", "mobilenet", "--space-args", '"stages"'], "must be a JSON object"),
    ],
)
def test_bad_space_arguments_are_one_line_errors(argv, expected, files, tmp_path, capsys):
    argv = [a.replace("{files}", str(files)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert expected in _main_error(capsys, *argv)
