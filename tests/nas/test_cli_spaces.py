"""`nas spaces list` / `nas spaces show`, run as real commands."""

from __future__ import annotations

import json

import pytest


def test_spaces_list(run_nas):
    res = run_nas("spaces", "list")
    assert res.returncode == 0, res.stderr
    for name in ("nb201", "mobilenet", "spaceevo", "resnet", "hhnas"):
        assert name in res.stdout
    res = run_nas("spaces", "list", "--json")
    names = [s["name"] for s in json.loads(res.stdout)["spaces"]]
    assert {"nb201", "mobilenet", "spaceevo", "resnet", "hhnas"} <= set(names)


def test_spaces_show_json(run_nas):
    res = run_nas("spaces", "show", "nb201", "--sample", "3", "--seed", "5", "--json")
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    assert obj["name"] == "nb201" and obj["size"] == 15625
    assert [d["path"] for d in obj["decisions"]][0] == "stages.cell.n1.e0.op"
    assert len(obj["decisions"][0]["options"]) == 5
    assert len(obj["samples"]) == 3 and all(len(s) == 6 for s in obj["samples"])

    from spaces import Arch, create_space

    space = create_space("nb201")
    assert [Arch(s) for s in obj["samples"]] == [space.sample(5 + i) for i in range(3)]


def test_spaces_show_with_shape_and_big_size(run_nas):
    res = run_nas(
        "spaces",
        "show",
        "spaceevo",
        "--in-chans",
        "1",
        "--num-classes",
        "10",
        "--resolution",
        "28",
        "--sample",
        "1",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    assert obj["input"] == [1, 28, 28]
    assert int(obj["size"]) > 10**15


def test_spaces_show_table_and_yaml(run_nas, tmp_path):
    res = run_nas("spaces", "show", "mobilenet", "--sample", "2")
    assert res.returncode == 0 and "stage1.depth" in res.stdout
    res = run_nas("spaces", "show", "mobilenet", "--yaml", "--resolution", "28")
    assert res.returncode == 0
    path = tmp_path / "m.yaml"
    path.write_text(res.stdout)
    res2 = run_nas("spaces", "show", str(path), "--json", "--sample", "1")
    assert res2.returncode == 0, res2.stderr
    assert json.loads(res2.stdout)["name"] == "mobilenet"


@pytest.mark.parametrize(
    "args, message",
    [
        (("spaces", "show", "nope"), "unknown space 'nope'"),
        (("spaces", "show", "nb201", "--sample", "-1"), "argument --sample: must be an integer in [0, 10000], got -1"),
        (
            ("spaces", "show", "nb201", "--resolution", "0"),
            "argument --resolution: must be an integer in [1, 8192], got 0",
        ),
        (("spaces", "show", "missing.yaml"), "missing.yaml: no such file"),
    ],
)
def test_spaces_errors_are_one_line(run_nas, args, message):
    res = run_nas(*args)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_bad_yaml_via_cli(run_nas, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nbody: {op: conv_bn_act, out: 8, act: gelu}\n")
    res = run_nas("spaces", "show", str(path))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "act: 'gelu' is not one of" in res.stderr
