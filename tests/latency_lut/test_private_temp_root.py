"""Every ``nas`` command keeps its temporary files in a locked folder of its own (``hwnas-tmp-*``):
removed when the command ends, and by the next command when it was SIGKILLed (``tempfile`` folders of
its libraries included, which no ``finally`` clause removes then)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from latency_lut.workdir import private_temp_root, system_tempdir, work_folder


def test_tempfile_points_into_the_private_folder_for_the_block(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with private_temp_root() as root:
        assert root.parent == tmp_path and root.name.startswith("hwnas-tmp-")
        assert tempfile.gettempdir() == str(root) and os.environ["TMPDIR"] == str(root)
        assert system_tempdir() == tmp_path
        made = Path(tempfile.mkdtemp())
        assert made.parent == root
        with private_temp_root() as inner:  # nested: the same folder
            assert inner == root
        with work_folder("hwnas-profile-") as work:  # work folders stay in the known place
            assert work.parent == tmp_path
    assert not root.exists()
    assert tempfile.gettempdir() == str(tmp_path) and os.environ["TMPDIR"] == str(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_folder_of_a_killed_command_is_removed_by_the_next(tmp_path):
    code = (
        "import os, tempfile\n"
        "from latency_lut.workdir import private_temp_root, work_folder\n"
        "cm = private_temp_root(); root = cm.__enter__()\n"
        "left = tempfile.mkdtemp()\n"  # a library's temporary folder
        "cm2 = work_folder('hwnas-profile-'); w = cm2.__enter__()\n"
        "print(root, left, w, flush=True); os._exit(0)\n"  # no cleanup, as after a SIGKILL
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    root, left, work = (Path(p) for p in out.stdout.split())
    assert root.parent == tmp_path and Path(left).parent == root and work.parent == tmp_path
    assert root.is_dir() and work.is_dir()
    code = "from latency_lut.workdir import private_temp_root\nwith private_temp_root(): pass\n"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert list(tmp_path.iterdir()) == []  # the next command removed both


def test_a_command_run_in_process_leaves_nothing(tmp_path, monkeypatch, capsys):
    from nas.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert main(["spaces", "show", "nb201"]) == 0
    assert list(tmp_path.iterdir()) == []
    assert tempfile.gettempdir() == str(tmp_path)
