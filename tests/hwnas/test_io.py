"""The bottom layer: errors, seeding and I/O helpers."""

from __future__ import annotations

import random

import pytest

from hwnas import HwnasError, make_rng
from hwnas.errors import ConfigError, InvalidArchError, SpaceDefinitionError, UnknownNameError
from hwnas.io import atomic_write_text, canonical_json, load_yaml_file, read_json_file


def test_every_error_derives_from_the_root():
    for cls in (ConfigError, InvalidArchError, SpaceDefinitionError, UnknownNameError):
        assert issubclass(cls, HwnasError)
    assert str(UnknownNameError("unknown x")) == "unknown x"


def test_make_rng():
    assert make_rng(3).random() == random.Random(3).random()
    r = random.Random(1)
    assert make_rng(r) is r
    import numpy as np

    assert make_rng(np.random.default_rng(0)).random() == make_rng(np.random.default_rng(0)).random()
    with pytest.raises(TypeError):
        make_rng("seed")


def test_canonical_json_sorts_keys():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_file_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        read_json_file(tmp_path / "x.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError, match=r"invalid JSON at line 1"):
        read_json_file(bad)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml_file(bad_yaml)


def test_atomic_write(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "hello")
    assert p.read_text() == "hello"
    assert [x.name for x in p.parent.iterdir()] == ["f.txt"]


def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path):
    """Not the temporary file's 0600: a report or checkpoint must be readable as any other file."""
    import os

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        (tmp_path / "b.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_write_removes_its_temporary_when_the_writer_fails(tmp_path):
    from hwnas.io import atomic_write

    def fail(tmp: str) -> None:
        open(tmp, "w").write("half")
        raise OSError("disk full")

    (tmp_path / "f.bin").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "f.bin", fail)
    assert [x.name for x in tmp_path.iterdir()] == ["f.bin"] and (tmp_path / "f.bin").read_text() == "old"


def test_json_safe_turns_non_finite_floats_into_null():
    import json
    import math

    from hwnas.io import json_safe

    data = {"a": [1.0, math.nan, {"b": math.inf}], "c": -math.inf, "d": "x"}
    assert json_safe(data) == {"a": [1.0, None, {"b": None}], "c": None, "d": "x"}
    json.dumps(json_safe(data), allow_nan=False)


# -- every user file read goes through one helper: one-line errors naming the file ---------------
def _one_line(exc_info, path) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


@pytest.mark.parametrize("reader", [read_json_file, load_yaml_file])
def test_read_errors_name_the_file_in_one_line(tmp_path, reader):
    import os

    from hwnas.io import FileAccessError, FileDecodeError, InputFileError

    missing = tmp_path / "missing.txt"
    with pytest.raises(FileAccessError) as info:
        reader(missing)
    assert "no such file" in _one_line(info, missing)
    with pytest.raises(FileAccessError) as info:
        reader(tmp_path)
    assert "is a folder" in _one_line(info, tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileAccessError) as info:  # would block for ever if opened
        reader(fifo)
    assert "not a regular file" in _one_line(info, fifo)
    under = tmp_path / "afile"
    under.write_text("x")
    with pytest.raises(FileAccessError) as info:
        reader(under / "x")
    assert "a parent of it is a file" in _one_line(info, under / "x")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes('{"a": 1}\n{"name": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(FileDecodeError) as info:
        reader(latin)
    assert "not UTF-8 text: byte 0xe9 at line 2, column 14" in _one_line(info, latin)
    assert issubclass(FileDecodeError, InputFileError) and issubclass(InputFileError, ConfigError)


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    import builtins

    from hwnas.io import FileAccessError, read_text_file

    path = tmp_path / "secret.yaml"
    path.write_text("a: 1\n")
    real_open = builtins.open

    def denied(file, *args, **kwargs):  # root ignores permission bits: simulate the denial
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(FileAccessError) as info:
        read_text_file(path, "space YAML")
    assert _one_line(info, path).endswith("cannot read (space YAML): permission denied")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"a": ' + "1" * 5000 + "}", "Exceeds the limit (4300 digits)"),
        ("", "invalid JSON at line 1, column 1"),
    ],
)
def test_json_format_errors(tmp_path, text, expected):
    from hwnas.io import FileFormatError

    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(FileFormatError) as info:
        read_json_file(path)
    assert expected in _one_line(info, path)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a: [1\n", "invalid YAML at line 2"),
        ("a: 1\nb: 2\na: 3\n", "invalid YAML at line 3, column 1: duplicate key 'a'"),
        ("a: 2001-13-45\n", "month must be in 1..12"),
        ("a: " + "9" * 5000 + "\n", "invalid YAML: Exceeds the limit"),
        ("[" * 3000 + "]" * 3000, "invalid YAML: nested too deeply"),
        ("a: !!python/object/apply:os.system ['true']\n", "invalid YAML at line 1"),
        ("a: *nothing\n", "found undefined alias"),
    ],
)
def test_yaml_format_errors(tmp_path, text, expected):
    from hwnas.io import FileFormatError

    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(FileFormatError) as info:
        load_yaml_file(path)
    assert expected in _one_line(info, path)


def test_good_files_read_as_before(tmp_path):
    import gzip

    from hwnas.io import read_text_file

    path = tmp_path / "ok.yaml"
    path.write_bytes("\ufeffname: café\nmerge: &a {x: 1}\nother: {<<: *a, y: 2}\n".encode())  # a BOM is dropped
    assert load_yaml_file(path) == {"name": "café", "merge": {"x": 1}, "other": {"x": 1, "y": 2}}
    j = tmp_path / "ok.json"
    j.write_text('{"a": [1, 2.5, null]}')
    assert read_json_file(j) == {"a": [1, 2.5, None]}
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    assert read_text_file(gz) == "a,b\n1,2\n"


def test_damaged_gzip_is_one_line(tmp_path):
    from hwnas.io import FileDecodeError, read_text_file

    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(FileDecodeError) as info:
        read_text_file(gz)
    assert "not a valid gzip file" in _one_line(info, gz)


def test_output_folders(tmp_path):
    from hwnas.io import OutputPathError, check_out_dir, prepare_out_dir, prepare_out_file

    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (prepare_out_dir, afile, "exists and is not a folder"),
        (prepare_out_dir, afile / "sub" / "deeper", f"{afile} is not a folder"),
        (check_out_dir, "/proc/hwnas-test/x", "not writable"),  # unwritable even for root
        (prepare_out_dir, "/sys/hwnas-test", "not writable"),
        (prepare_out_file, tmp_path, "is a folder"),
        (prepare_out_file, afile / "lut.db", "exists and is not a folder"),
    ]
    for fn, path, expected in cases:
        with pytest.raises(OutputPathError) as info:
            fn(path, "--out")
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith(f"--out {path}") and expected in msg, msg
    new = tmp_path / "new" / "run"
    assert check_out_dir(new) == new and not new.exists()  # checking creates nothing
    assert prepare_out_dir(new) == new and new.is_dir() and list(new.iterdir()) == []
    assert prepare_out_file(tmp_path / "x" / "lut.db").parent.is_dir()


def test_remove_write_leftovers_removes_only_the_temporaries_of_the_named_files(tmp_path):
    from hwnas.io import remove_write_leftovers

    for name in (".a.png.x1y2.tmp", ".a.png.z.tmp", ".b.json.q.tmp", "a.png", ".a.pngx.tmp"):
        (tmp_path / name).write_text("x")
    removed = remove_write_leftovers(tmp_path / "a.png", tmp_path / "missing.yaml")
    assert sorted(p.name for p in removed) == [".a.png.x1y2.tmp", ".a.png.z.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.pngx.tmp", ".b.json.q.tmp", "a.png"]
