"""`nas train-supernet` and `nas eval-subnet`, run as the real command."""

from __future__ import annotations

import json

import pytest

from tests.helpers import TINY_MOBILENET, run_cli

TRAIN = [
    "--space",
    "mobilenet",
    "--space-args",
    json.dumps(TINY_MOBILENET),
    "--data",
    "fashion-mnist",
    "--epochs",
    "1",
    "--qat-epochs",
    "1",
    "--batch-size",
    "32",
    "--train-limit",
    "160",
    "--test-limit",
    "100",
    "--bn-calib-batches",
    "2",
    "--threads",
    "1",
    "--no-progress",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("supernet") / "run"
    res = run_cli("train-supernet", *TRAIN, "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    return out, json.loads(res.stdout.strip().splitlines()[-1]), res.stderr


def test_train_writes_checkpoint_metrics_and_progress(trained):
    out, final, log = trained
    assert (out / "checkpoint.safetensors").exists()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["stage"] for x in lines] == ["fp32", "qat"]
    assert final["epochs"] == 2 and "test_acc" in final
    assert "img/s" in log and "quantized-for-all stage" in log


def test_eval_subnet_int8_json(trained, tmp_path):
    out, _, _ = trained
    arch_file = tmp_path / "arch.json"
    from tests.helpers import tiny_space

    arch = tiny_space("mobilenet").sample(3)
    arch_file.write_text(arch.to_json())
    res = run_cli(
        "eval-subnet",
        "--checkpoint",
        str(out),
        "--arch",
        str(arch_file),
        "--int8",
        "--json",
        "--onnx",
        str(tmp_path / "sub.onnx"),
    )
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert rec["arch_id"] == arch.id and rec["precision"] == "int8" and rec["quantization"] == "qat"
    assert 0.0 <= rec["accuracy"] <= 100.0 and rec["num_test"] == 10000
    assert (tmp_path / "sub.onnx").exists()


def test_eval_subnet_fp32_largest(trained):
    out, _, _ = trained
    res = run_cli("eval-subnet", "--checkpoint", str(out), "--arch", "largest", "--json", "--test-limit", "200")
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert rec["precision"] == "fp32" and rec["num_test"] == 200 and {"arch_id", "accuracy"} <= set(rec)


def test_arch_of_another_space_is_refused(trained, tmp_path):
    out, _, _ = trained
    from tests.helpers import tiny_space

    bad = tmp_path / "resnet_arch.json"
    bad.write_text(tiny_space("resnet").sample(0).to_json())
    res = run_cli("eval-subnet", "--checkpoint", str(out), "--arch", str(bad), "--json")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "nas eval-subnet: error:" in res.stderr


def test_corrupt_checkpoint_is_one_line_error(tmp_path):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"garbage" * 20)
    res = run_cli("eval-subnet", "--checkpoint", str(tmp_path), "--arch", "largest")
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "not a readable safetensors checkpoint" in res.stderr


def test_existing_run_needs_resume_and_resume_checks_options(trained, capsys):
    """Option validation, in process (``nas.cli.main``): the subprocess tests above cover the
    real command; these only check that mistakes are one-line errors before any training."""
    from nas.cli import main

    out, _, _ = trained
    assert main(["train-supernet", *TRAIN, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train-supernet", "--out", str(out), "--resume", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "differs from the checkpoint" in err and len(err.strip().splitlines()) == 1
    assert main(["train-supernet", "--space", "mobilenet", "--space-args", "{bad", "--out", str(out / "x")]) == 2
    assert "--space-args" in capsys.readouterr().err
    assert main(["eval-subnet", "--checkpoint", str(out / "nowhere"), "--arch", "largest"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
