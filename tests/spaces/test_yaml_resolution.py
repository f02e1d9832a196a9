"""A space YAML file's ``resolution:`` is checked against its strides like ``--resolution`` is."""

from __future__ import annotations

import pytest

from hwnas.errors import ConfigError

YAML = """\
name: strided
in_chans: 1
num_classes: 10
resolution: {resolution}
body:
  sequential:
    stem: {{op: conv_bn_act, out: 8, kernel: 3, stride: 2}}
    stage:
      repeat:
        op: conv_bn_act
        out: {{choice: [8, 16]}}
        stride: {{expr: 2 if index == 0 else 1}}
      depth: {{choice: [1, 2]}}
    head: {{op: classifier, num_classes: 10}}
"""


@pytest.mark.parametrize("resolution, ok", [(1, False), (2, False), (3, True), (32, True)])
def test_yaml_resolution_must_suit_the_strides(tmp_path, resolution, ok):
    from spaces import create_space, load_space

    path = tmp_path / "strided.yaml"
    path.write_text(YAML.format(resolution=resolution))
    if ok:
        assert load_space(path).resolution == resolution
        assert create_space(str(path)).resolution == resolution
        return
    for load in (load_space, lambda p: create_space(str(p))):
        with pytest.raises(ConfigError) as err:
            load(path)
        msg = str(err.value)
        assert "\n" not in msg
        assert msg.startswith(f"{path}: resolution: {resolution} is too small for space 'strided'"), msg
        assert "give at least 4" in msg


def test_cli_names_the_yaml_file(tmp_path, capsys):
    from nas.cli import main

    path = tmp_path / "strided.yaml"
    path.write_text(YAML.format(resolution=2))
    assert main(["spaces", "show", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas spaces: error: ") and "\n" not in err
    assert f"{path}: resolution: 2 is too small" in err
