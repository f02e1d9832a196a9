"""Bad-input campaign, files: every command that reads or writes files, fed missing, unreadable,
non-UTF-8, malformed, hostile or damaged ones (space YAML, target YAML, arch JSON, run configs,
LUTs, block-folder manifests, the NAS-Bench-201 table, data sets, output folders).

Each case runs the real CLI in-process (``nas.cli.main(argv)``, as the other CLI tests do, so
that the whole table stays fast) and asserts exit code 2 and exactly one line on stderr that
names the problem (and the file). An exception escaping ``main`` is a traceback and fails its
case; a case running past ``CASE_SECONDS`` is a hang. ``test_campaign_counts`` prints the counts
(cases, clean errors, tracebacks, hangs, wrong exit code or message, silent wrong results included)
for the issue's closing note::

    PYTHONPATH=. python -m pytest -q -s -p no:cacheprovider tests/campaign/test_bad_input_files.py
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "latency_lut"))
from lut_test_helpers import TINY_SPACE_YAML, write_fast_target  # noqa: E402


# -- the inputs -------------------------------------------------------------------------------------
class Files:
    """Every bad (and the few good) input files of the campaign, built once, torch-free."""

    def __init__(self, root: Path) -> None:
        self.root = root
        r = root
        (r / "tiny.yaml").write_text(TINY_SPACE_YAML)
        self.tiny = r / "tiny.yaml"
        self.target = write_fast_target(r, "int8", name="fast-int8")
        self.afile = r / "afile.txt"
        self.afile.write_text("I am a file, not a folder\n")
        self.folder = r / "afolder.yaml"  # a folder with a file-like name
        self.folder.mkdir()
        self.fifo = r / "fifo.yaml"
        os.mkfifo(self.fifo)  # reading it would block for ever
        self.missing = r / "missing.yaml"
        self.under_file = self.afile / "x.yaml"  # a "folder" on the way is a file

        def write(name: str, data: str | bytes) -> Path:
            p = r / name
            p.write_bytes(data if isinstance(data, bytes) else data.encode())
            return p

        # text files of every kind, in YAML and JSON flavours
        self.yaml = {
            "non_utf8": write("latin1.yaml", "name: caf\xe9\n".encode("latin-1")),
            "syntax": write("syntax.yaml", "name: [unclosed\n"),
            "deep": write("deep.yaml", "[" * 3000 + "]" * 3000 + "\n"),
            "huge_int": write("hugeint.yaml", "name: tiny\nresolution: " + "9" * 5000 + "\n"),
            "timestamp": write("timestamp.yaml", "name: 2001-13-45\n"),
            "duplicate": write("duplicate.yaml", TINY_SPACE_YAML + "resolution: 32\n"),
            "too_small": write("toosmall.yaml", TINY_SPACE_YAML.replace("resolution: 16", "resolution: 1")),
            "python_tag": write("pytag.yaml", "name: !!python/object/apply:os.system ['true']\n"),
            "alias": write("alias.yaml", "name: *nothing\n"),
            "binary": write("binary.yaml", bytes(range(256)) * 4),
        }
        self.json = {
            "non_utf8": write("latin1.json", '{"stage1.depth": "caf\xe9"}'.encode("latin-1")),
            "syntax": write("syntax.json", '{"stage1.depth": 1,'),
            "deep": write("deep.json", "[" * 100_000 + "]" * 100_000),
            "huge_int": write("hugeint.json", '{"stage1.depth": ' + "1" * 5000 + "}"),
            "list": write("list.json", "[1, 2, 3]"),
            "empty": write("empty.json", ""),
            "utf16": write("utf16.json", '{"stage1.depth": 1}'.encode("utf-16")),
        }
        # target YAML files
        self.targets = {
            "list": write("t_list.yaml", "- name: x\n"),
            "no_engine": write("t_noengine.yaml", "name: x\nprecision: int8\n"),
            "bad_engine": write("t_badengine.yaml", "name: x\nengine: tflite\nprecision: int8\n"),
            "threads_text": write("t_threads.yaml", "name: x\nengine: onnxruntime\nprecision: int8\nthreads: two\n"),
        }
        # run configs
        self.configs = {
            "list": write("c_list.yaml", "- lut\n- supernet\n"),
            "unknown_key": write("c_unknown.yaml", "bogus_section: {a: 1}\n"),
            "lut_missing": write("c_lutmissing.yaml", f"lut: {{path: {r / 'no-such-lut.db'}}}\n"),
        }
        self.luts = self._luts()
        self.blocks = self._block_folders()
        self.tables = {
            "non_utf8": write("t_latin1.csv", "arch_str,cifar10_test_acc\n|caf\xe9~0|,1.0\n".encode("latin-1")),
            "bad_gzip": write("t_bad.csv.gz", b"\x1f\x8b\x08\x00garbage-not-deflate" * 3),
            "no_arch_col": write("t_nocol.csv", "a,b\n1,2\n"),
            "empty": write("t_empty.csv", ""),
        }
        self.data = {
            "garbage_npz": write("garbage.npz", b"PK\x03\x04 this is not a zip archive at all"),
            "text_npz": write("text.npz", "not an npz\n"),
            "empty_folder": r / "empty_data",
        }
        (r / "empty_data").mkdir()
        self.ckpt_file = write("garbage.safetensors", b"garbage, not a safetensors header")
        (r / "ckpt").mkdir()
        self.ckpt_dir = r / "ckpt"
        write("ckpt/checkpoint.safetensors", b"\xff\xfe\x00")
        self.ro_dirs = [Path("/proc/hwnas-campaign"), Path("/sys/hwnas-campaign")]  # unwritable even for root

    # LUT files: valid, and damaged in every way
    def _luts(self) -> dict[str, Path]:
        from hw_profiles import Fingerprint, Stats
        from latency_lut.db import open_lut

        r = self.root
        fp = Fingerprint(
            {
                "engine": "onnxruntime",
                "engine_version": "1.0",
                "precision": "int8",
                "threads": 1,
                "cpu": {"model": "campaign cpu", "flags": []},
            },
            "cpu-campaign-int8",
        )
        good = r / "good.db"
        with open_lut(good, "w") as db:
            db.register_fingerprint(fp)
            run = db.begin_run(fp.id, "campaign")
            for i in range(400):
                s = 1.0 + i
                db.insert(
                    fp.id,
                    f"block{i:03d}_c8-8_h8w8_b1",
                    "mbconv",
                    "mbconv relu",
                    Stats(median_ms=s, mean_ms=s, std_ms=0.0, min_ms=s, count=10, spread=0.01, rounds=3, stable=True),
                    run,
                )
            db.end_run(run, 400)
        data = good.read_bytes()
        out = {"good": good}

        def write(name: str, blob: bytes) -> None:
            out[name] = r / f"lut_{name}.db"
            out[name].write_bytes(blob)

        write("empty", b"")
        write("text", b"hello, I am not a database\n" * 10)
        write("header_only", data[:60])
        write("truncated", data[: len(data) // 2])
        btree = bytearray(data)
        for frac in (0.6, 0.7, 0.8, 0.9):  # garbage into the middle: index and table pages
            off = int(len(data) * frac)
            btree[off : off + 64] = b"\xde\xad\xbe\xef" * 16
        write("btree", bytes(btree))
        foreign = r / "lut_foreign.db"
        con = sqlite3.connect(foreign)
        con.execute("CREATE TABLE t (x)")
        con.commit()
        con.close()
        out["foreign"] = foreign
        future = r / "lut_future.db"
        future.write_bytes(data)
        con = sqlite3.connect(future)
        con.execute("UPDATE schema_version SET version = 99")
        con.commit()
        con.close()
        out["future"] = future
        return out

    # block folders (torch-free: the files are never measured, every case fails on the manifest)
    def _block_folders(self) -> dict[str, Path]:
        r = self.root / "blocks"
        r.mkdir()
        outside = self.root / "outside.onnx"
        outside.write_bytes(b"an innocent-looking model outside the folder")
        base = {
            "format": "hwnas-blocks",
            "version": 1,
            "batch": 1,
            "formats": ["int8_nhwc"],
            "space": {
                "name": "tiny",
                "signature": "tiny-0123456789",
                "hash": "0123456789abcdef",
                "input_shape": [1, 16, 16],
                "num_classes": 10,
                "kwargs": {},
            },
            "blocks": [
                {
                    "key": "mbconv_relu_k3_e2_se0_s1_c8-8_h8w8_b1",
                    "op": "mbconv",
                    "params": {"act": "relu"},
                    "cin": 8,
                    "cout": 8,
                    "h": 8,
                    "w": 8,
                    "files": {"int8_nhwc": "blocks/b0.int8_nhwc.onnx"},
                }
            ],
            "extras": [
                {
                    "key": "overhead_b1",
                    "role": "overhead",
                    "op": "overhead",
                    "files": {"int8_nhwc": "blocks/overhead.int8_nhwc.onnx"},
                }
            ],
            "networks": [
                {
                    "arch_id": "abc123",
                    "arch": {"stage1.depth": 1},
                    "keys": ["overhead_b1"],
                    "files": {"int8_nhwc": "networks/abc123.int8_nhwc.onnx"},
                }
            ],
        }
        folders: dict[str, Path] = {}

        def folder(name: str, change: Callable[[dict], None] | None = None, raw: bytes | None = None) -> None:
            d = r / name
            (d / "blocks").mkdir(parents=True)
            (d / "networks").mkdir()
            for rel in ("blocks/b0.int8_nhwc.onnx", "blocks/overhead.int8_nhwc.onnx", "networks/abc123.int8_nhwc.onnx"):
                (d / rel).write_bytes(b"model")
            data = json.loads(json.dumps(base))
            if change is not None:
                change(data)
            (d / "manifest.json").write_bytes(raw if raw is not None else json.dumps(data).encode())
            folders[name] = d

        def blk(k, v):
            return lambda d: d["blocks"][0].__setitem__(k, v)

        def rm(*path):
            def change(d):
                obj = d
                for p in path[:-1]:
                    obj = obj[p]
                del obj[path[-1]]

            return change

        folder("non_utf8", raw='{"format": "hwnas-blocks", "note": "caf\xe9"}'.encode("latin-1"))
        folder("syntax", raw=b'{"format": "hwnas-blocks",')
        folder("deep", raw=b"[" * 100_000)
        folder("not_object", raw=b"[1, 2]")
        folder("wrong_format", lambda d: d.__setitem__("format", "something-else"))
        folder("version", lambda d: d.__setitem__("version", 2))
        folder("blocks_object", lambda d: d.__setitem__("blocks", {"a": 1}))
        folder("block_string", lambda d: d.__setitem__("blocks", ["conv"]))
        folder("key_int", blk("key", 7))
        folder("key_missing", rm("blocks", 0, "key"))
        folder("key_hostile", blk("key", "x'; DROP TABLE latency; --"))
        folder("files_list", blk("files", ["blocks/b0.onnx"]))
        folder("files_missing", rm("blocks", 0, "files"))
        folder("file_int", blk("files", {"int8_nhwc": 5}))
        folder("params_list", blk("params", ["relu"]))
        folder("cin_text", blk("cin", "8"))
        folder("op_int", blk("op", 1))
        folder("batch_text", lambda d: d.__setitem__("batch", "1"))
        folder("batch_zero", lambda d: d.__setitem__("batch", 0))
        folder("formats_text", lambda d: d.__setitem__("formats", "int8_nhwc"))
        folder("formats_unknown", lambda d: d.__setitem__("formats", ["int9"]))
        folder("space_text", lambda d: d.__setitem__("space", "tiny"))
        folder("space_no_signature", rm("space", "signature"))
        folder("extras_role_list", lambda d: d["extras"][0].__setitem__("role", ["overhead"]))
        folder("network_keys_text", lambda d: d["networks"][0].__setitem__("keys", "overhead_b1"))
        folder("network_arch_list", lambda d: d["networks"][0].__setitem__("arch", [1]))
        folder("network_no_id", rm("networks", 0, "arch_id"))
        # hostile paths: the profiler must never measure (and store) a file from outside the folder
        folder("dotdot", blk("files", {"int8_nhwc": "../../outside.onnx"}))
        folder("dotdot_deep", blk("files", {"int8_nhwc": "blocks/../../../outside.onnx"}))
        folder("absolute", blk("files", {"int8_nhwc": str(outside)}))
        folder("absolute_etc", blk("files", {"int8_nhwc": "/etc/passwd"}))
        folder("home", blk("files", {"int8_nhwc": "~/outside.onnx"}))
        folder("network_dotdot", lambda d: d["networks"][0].__setitem__("files", {"int8_nhwc": "../../outside.onnx"}))
        folder("symlink_file")
        link = folders["symlink_file"] / "blocks" / "b0.int8_nhwc.onnx"
        link.unlink()
        link.symlink_to(outside)
        folder("symlink_dir")
        elsewhere = self.root / "elsewhere"
        shutil.move(folders["symlink_dir"] / "networks", elsewhere)  # the models, moved out of the folder
        (folders["symlink_dir"] / "networks").symlink_to(elsewhere, target_is_directory=True)
        folders["no_manifest"] = r / "no_manifest"
        (r / "no_manifest").mkdir()
        folder("manifest_folder")
        (folders["manifest_folder"] / "manifest.json").unlink()
        (folders["manifest_folder"] / "manifest.json").mkdir()
        return folders


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    return Files(tmp_path_factory.mktemp("campaign"))


# -- the cases --------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    argv: Callable[[Files], list[str]]
    expect: str | Callable[[Files], str]  # a substring of the one-line error
    names: Callable[[Files], Path] | None = None  # the file (or folder) the message must name
    env: dict[str, Callable[[Files], str]] = field(default_factory=dict)


CASES: list[Case] = []


def case(name: str, argv: Callable[[Files], list[str]], expect: str | Callable[[Files], str], **kw) -> None:
    CASES.append(Case(name, argv, expect, **kw))


S = str

# 1. space YAML files, through every command that takes --space (or SPACE)
_SPACE_READERS: dict[str, Callable[[Files, str], list[str]]] = {
    "spaces-show": lambda f, p: ["spaces", "show", p],
    "profile": lambda f, p: ["profile", "--space", p, "--target", S(f.target), "--out", S(f.root / "p.db")],
    "export-blocks": lambda f, p: ["lut", "export-blocks", "--space", p, "--out", S(f.root / "exp")],
    "lut-show": lambda f, p: ["lut", "show", S(f.luts["good"]), "--space", p],
    "train-supernet": lambda f, p: ["train-supernet", "--space", p, "--data", "digits", "--out", S(f.root / "ts")],
    "search": lambda f, p: ["search", "--space", p, "--searcher", "random", "--budget", "2"],
}
_SPACE_KINDS = {
    "missing": (lambda f: f.missing, "no such file"),
    "folder": (lambda f: f.folder, "is a folder"),
    "fifo": (lambda f: f.fifo, "not a regular file"),
    "under-file": (lambda f: f.afile / "s.yaml", "no such file"),
    "non-utf8": (lambda f: f.yaml["non_utf8"], "not UTF-8 text (space YAML): byte 0xe9 at line 1, column 10"),
    "syntax": (lambda f: f.yaml["syntax"], "invalid YAML at line 2"),
    "deep": (lambda f: f.yaml["deep"], "invalid YAML"),
    "huge-int": (lambda f: f.yaml["huge_int"], "invalid YAML"),
    "timestamp": (lambda f: f.yaml["timestamp"], "invalid YAML: month must be in 1..12"),
    "duplicate-key": (lambda f: f.yaml["duplicate"], "duplicate key 'resolution'"),
    "resolution-too-small": (lambda f: f.yaml["too_small"], "resolution: 1 is too small for space 'tiny'"),
    "python-tag": (lambda f: f.yaml["python_tag"], "invalid YAML at line 1"),
    "alias": (lambda f: f.yaml["alias"], "found undefined alias"),
    "binary": (lambda f: f.yaml["binary"], "not UTF-8 text"),
}
for reader, build in _SPACE_READERS.items():
    kinds = (
        _SPACE_KINDS
        if reader == "spaces-show"
        else {
            k: _SPACE_KINDS[k]
            for k in ("missing", "folder", "non-utf8", "syntax", "duplicate-key", "resolution-too-small")
        }
    )
    for kind, (path, expect) in kinds.items():
        case(f"space-yaml/{kind}/{reader}", lambda f, b=build, p=path: b(f, S(p(f))), expect, names=path)

# 2. target YAML files (profile, lut validate, export)
_TARGET_KINDS = {
    "missing": (lambda f: f.root / "nope.yaml", "does not exist"),
    "folder": (lambda f: f.folder, "is a folder"),
    "fifo": (lambda f: f.fifo, "not a regular file"),
    "non-utf8": (lambda f: f.yaml["non_utf8"], "not UTF-8 text (target YAML)"),
    "syntax": (lambda f: f.yaml["syntax"], "invalid YAML at line 2"),
    "list": (lambda f: f.targets["list"], "a target is a mapping"),
    "no-engine": (lambda f: f.targets["no_engine"], "missing key 'engine'"),
    "bad-engine": (lambda f: f.targets["bad_engine"], "'tflite' is not one of"),
    "threads-text": (lambda f: f.targets["threads_text"], "threads: expected a positive integer"),
}
for kind, (path, expect) in _TARGET_KINDS.items():
    case(
        f"target-yaml/{kind}/profile",
        lambda f, p=path: ["profile", "--space", S(f.tiny), "--target", S(p(f)), "--out", S(f.root / "t.db")],
        expect,
        names=path,
    )
for kind in ("folder", "non-utf8", "list"):
    path, expect = _TARGET_KINDS[kind]
    case(
        f"target-yaml/{kind}/lut-validate",
        lambda f, p=path: [
            "lut",
            "validate",
            "--lut",
            S(f.luts["good"]),
            "--space",
            S(f.tiny),
            "--target",
            S(p(f)),
            "--n",
            "2",
        ],
        expect,
        names=path,
    )

# 3. arch JSON files (eval-subnet reads --arch before the checkpoint; export with --checkpoint too)
_ARCH_KINDS = {
    "missing": (lambda f: f.root / "nope.json", "no such file"),
    "folder": (lambda f: f.folder, "is a folder"),
    "fifo": (lambda f: f.fifo, "not a regular file"),
    "non-utf8": (lambda f: f.json["non_utf8"], "not UTF-8 text"),
    "utf16": (lambda f: f.json["utf16"], "not UTF-8 text"),
    "syntax": (lambda f: f.json["syntax"], "invalid JSON at line 1"),
    "deep": (lambda f: f.json["deep"], "nested too deeply"),
    "huge-int": (lambda f: f.json["huge_int"], "invalid JSON: Exceeds the limit (4300 digits)"),
    "list": (lambda f: f.json["list"], "holds a JSON object of decision values"),
    "empty": (lambda f: f.json["empty"], "invalid JSON at line 1, column 1"),
}
for kind, (path, expect) in _ARCH_KINDS.items():
    case(
        f"arch-json/{kind}/eval-subnet",
        lambda f, p=path: ["eval-subnet", "--checkpoint", S(f.root / "no-ckpt"), "--arch", S(p(f))],
        expect if kind != "list" else "an arch JSON file holds an object",
        names=path,
    )
for kind in ("missing", "non-utf8", "deep", "list"):
    path, expect = _ARCH_KINDS[kind]
    case(
        f"arch-json/{kind}/export",
        lambda f, p=path: [
            "export",
            "--checkpoint",
            S(f.root / "no-ckpt"),
            "--arch",
            S(p(f)),
            "--out",
            S(f.root / "ex"),
        ],
        expect,
        names=path,
    )

# 4. run configs
_CONFIG_KINDS = {
    "missing": (lambda f: f.root / "nope.yaml", "no such config file"),
    "folder": (lambda f: f.folder, "is a folder"),
    "fifo": (lambda f: f.fifo, "not a regular file"),
    "non-utf8": (lambda f: f.yaml["non_utf8"], "not UTF-8 text (run config)"),
    "syntax": (lambda f: f.yaml["syntax"], "invalid YAML at line 2"),
    "deep": (lambda f: f.yaml["deep"], "invalid YAML"),
    "duplicate-key": (lambda f: f.yaml["duplicate"], "duplicate key"),
    "list": (lambda f: f.configs["list"], "mapping"),
    "unknown-key": (lambda f: f.configs["unknown_key"], "bogus_section"),
    "lut-path-missing": (lambda f: f.configs["lut_missing"], "no such file"),
}
for kind, (path, expect) in _CONFIG_KINDS.items():
    case(
        f"run-config/{kind}",
        lambda f, p=path: ["run", S(p(f)), "--out", S(f.root / "run")],
        expect,
        names=(lambda f: f.root / "no-such-lut.db") if kind == "lut-path-missing" else path,
    )

# 5. LUT files, through every command that reads one
_LUT_KINDS = {
    "missing": (lambda f: f.root / "nope.db", "no such LUT file"),
    "folder": (lambda f: f.folder, "is a folder"),
    "empty": (lambda f: f.luts["empty"], "corrupt or truncated LUT (the file is empty)"),
    "text": (lambda f: f.luts["text"], "not an SQLite database"),
    "header-only": (lambda f: f.luts["header_only"], "truncated"),
    "truncated": (lambda f: f.luts["truncated"], "truncated"),
    "btree": (lambda f: f.luts["btree"], "corrupt LUT (SQLite integrity check"),
    "foreign-sqlite": (lambda f: f.luts["foreign"], "not a hwnas LUT"),
    "future-schema": (lambda f: f.luts["future"], "schema version 99 is not supported"),
}
for kind, (path, expect) in _LUT_KINDS.items():
    case(f"lut/{kind}/lut-show", lambda f, p=path: ["lut", "show", S(p(f))], expect, names=path)
for kind in ("missing", "text", "truncated", "btree", "future-schema"):
    path, expect = _LUT_KINDS[kind]
    case(
        f"lut/{kind}/lut-merge-input",
        lambda f, p=path: ["lut", "merge", S(f.root / "merged.db"), S(p(f))],
        expect,
        names=path,
    )
    case(
        f"lut/{kind}/lut-validate",
        lambda f, p=path: ["lut", "validate", "--lut", S(p(f)), "--target", S(f.target), "--n", "2"],
        expect,
        names=path,
    )
for kind in ("text", "btree"):
    path, expect = _LUT_KINDS[kind]
    case(
        f"lut/{kind}/lut-merge-output",
        lambda f, p=path: ["lut", "merge", S(p(f)), S(f.luts["good"])],
        expect,
        names=path,
    )
    case(
        f"lut/{kind}/profile-output",
        lambda f, p=path: ["profile", "--space", S(f.tiny), "--target", S(f.target), "--out", S(p(f))],
        expect,
        names=path,
    )

# 6. block folders and their manifests (nas profile DIR)
_BLOCK_CASES = {
    "no_manifest": "no manifest.json",
    "manifest_folder": "is a folder",
    "non_utf8": "not UTF-8 text (block manifest)",
    "syntax": "invalid JSON at line 1",
    "deep": "nested too deeply",
    "not_object": "not a hwnas block manifest",
    "wrong_format": "not a hwnas block manifest",
    "version": "unsupported manifest version 2",
    "blocks_object": "manifest: field 'blocks' must be an array",
    "block_string": "blocks[0]: must be an object, got string",
    "key_int": "blocks[0]: field 'key' must be a block key string",
    "key_missing": "blocks[0]: missing field 'key'",
    "key_hostile": "is not a block key",
    "files_list": "field 'files' must be an object",
    "files_missing": "missing field 'files'",
    "file_int": "files.int8_nhwc: expected a relative file path, got 5",
    "params_list": "field 'params' must be an object",
    "cin_text": "field 'cin' must be an integer",
    "op_int": "field 'op' must be a string",
    "batch_text": "field 'batch' must be a positive integer",
    "batch_zero": "field 'batch' must be a positive integer, got 0",
    "formats_text": "field 'formats' must be an array of strings",
    "formats_unknown": "unknown format 'int9'",
    "space_text": "space: must be an object",
    "space_no_signature": "space: missing field 'signature'",
    "extras_role_list": "extras[0] (overhead_b1): field 'role' must be a string",
    "network_keys_text": "networks[0] (abc123): field 'keys' must be an array of strings",
    "network_arch_list": "field 'arch' must be an object",
    "network_no_id": "networks[0]: missing field 'arch_id'",
    "dotdot": "leads outside the block folder",
    "dotdot_deep": "leads outside the block folder",
    "absolute": "is an absolute path",
    "absolute_etc": "is an absolute path",
    "home": "is an absolute path",
    "network_dotdot": "networks[0] (abc123): files.int8_nhwc: '../../outside.onnx' leads outside",
    "symlink_file": "leads outside the block folder",
    "symlink_dir": "leads outside the block folder",
}
for name, expect in _BLOCK_CASES.items():
    case(
        f"block-folder/{name}",
        lambda f, n=name: ["profile", S(f.blocks[n]), "--target", S(f.target), "--out", S(f.root / f"bf_{n}.db")],
        expect,
        names=lambda f, n=name: f.blocks[n],
    )
case(
    "block-folder/missing",
    lambda f: ["profile", S(f.root / "no-blocks"), "--target", S(f.target), "--out", S(f.root / "bf.db")],
    "no such folder",
    names=lambda f: f.root / "no-blocks",
)
case(
    "block-folder/is-a-file",
    lambda f: ["profile", S(f.afile), "--target", S(f.target), "--out", S(f.root / "bf.db")],
    "not a folder",
    names=lambda f: f.afile,
)

# 7. the NAS-Bench-201 table (--table of search and bench)
_TABLE_KINDS = {
    "missing": (lambda f: f.root / "nope.csv", "not found at"),
    "folder": (lambda f: f.folder, "is a folder"),
    "non-utf8": (lambda f: f.tables["non_utf8"], "not UTF-8 text (NAS-Bench-201 table)"),
    "bad-gzip": (lambda f: f.tables["bad_gzip"], "not a valid gzip file"),
    "no-arch-column": (lambda f: f.tables["no_arch_col"], "not a NAS-Bench-201 table"),
    "empty": (lambda f: f.tables["empty"], "not a NAS-Bench-201 table"),
}
for kind, (path, expect) in _TABLE_KINDS.items():
    case(
        f"nb201-table/{kind}/bench",
        lambda f, p=path: [
            "bench",
            "nb201",
            "--searcher",
            "random",
            "--budget",
            "2",
            "--seeds",
            "1",
            "--table",
            S(p(f)),
            "--quiet",
        ],
        expect,
        names=path,
    )
for kind in ("non-utf8", "bad-gzip"):
    path, expect = _TABLE_KINDS[kind]
    case(
        f"nb201-table/{kind}/search",
        lambda f, p=path: ["search", "--space", "nb201", "--searcher", "random", "--budget", "2", "--table", S(p(f))],
        expect,
        names=path,
    )

# 8. output paths: a file in the way, a file on the way, a folder that cannot be written
_OUT_KINDS = {
    "file": (lambda f: f.afile, "exists and is not a folder"),
    "under-file": (lambda f: f.afile / "sub", "is not a folder"),
    "proc": (lambda f: f.ro_dirs[0] / "sub", "not writable"),
    "sys": (lambda f: f.ro_dirs[1], "not writable"),
}
for kind, (path, expect) in _OUT_KINDS.items():
    case(
        f"out-dir/{kind}/export-blocks",
        lambda f, p=path: [
            "lut",
            "export-blocks",
            "--space",
            S(f.tiny),
            "--out",
            S(p(f)),
            "--archs",
            "1",
            "--networks",
            "0",
            "--no-progress",
        ],
        expect,
        names=path,
    )
    case(
        f"out-dir/{kind}/demo",
        lambda f, p=path: ["demo", "--quick", "--out", S(p(f)), "--no-progress"],
        expect,
        names=path,
    )
    case(f"out-dir/{kind}/run", lambda f, p=path: ["run", S(f.tiny), "--out", S(p(f))], expect, names=path)
_LUT_OUT_KINDS = {
    "folder": (lambda f: f.folder, "is a folder"),
    "under-file": (lambda f: f.afile / "lut.db", "exists and is not a folder"),
    "proc": (lambda f: f.ro_dirs[0] / "lut.db", "not writable"),
    "sys": (lambda f: f.ro_dirs[1] / "x" / "lut.db", "not writable"),
}
for kind, (path, expect) in _LUT_OUT_KINDS.items():
    case(
        f"out-lut/{kind}/profile",
        lambda f, p=path: ["profile", "--space", S(f.tiny), "--target", S(f.target), "--out", S(p(f))],
        expect,
        names=path,
    )
    case(
        f"out-lut/{kind}/lut-merge", lambda f, p=path: ["lut", "merge", S(p(f)), S(f.luts["good"])], expect, names=path
    )
case(
    "out-work/file/profile",
    lambda f: [
        "profile",
        "--space",
        S(f.tiny),
        "--target",
        S(f.target),
        "--out",
        S(f.root / "w.db"),
        "--work",
        S(f.afile),
    ],
    "--work",
    names=lambda f: f.afile,
)

# 9. data sets (train-supernet --data)
case(
    "data/garbage-npz",
    lambda f: ["train-supernet", "--space", S(f.tiny), "--data", S(f.data["garbage_npz"]), "--out", S(f.root / "ts1")],
    "not a readable .npz file",
    names=lambda f: f.data["garbage_npz"],
)
case(
    "data/text-npz",
    lambda f: ["train-supernet", "--space", S(f.tiny), "--data", S(f.data["text_npz"]), "--out", S(f.root / "ts2")],
    "not a readable .npz file",
    names=lambda f: f.data["text_npz"],
)
case(
    "data/missing",
    lambda f: ["train-supernet", "--space", S(f.tiny), "--data", S(f.root / "no-data"), "--out", S(f.root / "ts3")],
    "no such file or folder",
    names=lambda f: f.root / "no-data",
)
case(
    "data/empty-folder",
    lambda f: ["train-supernet", "--space", S(f.tiny), "--data", S(f.data["empty_folder"]), "--out", S(f.root / "ts4")],
    "not an ImageFolder data set",
    names=lambda f: f.data["empty_folder"],
)


# 10. supernet checkpoints (a damaged safetensors file, alone or in its training folder)
_CKPT = "not a readable safetensors checkpoint"
case(
    "checkpoint/garbage-file/eval-subnet",
    lambda f: ["eval-subnet", "--checkpoint", S(f.ckpt_file), "--arch", "largest"],
    _CKPT,
    names=lambda f: f.ckpt_file,
)
case(
    "checkpoint/garbage-in-folder/eval-subnet",
    lambda f: ["eval-subnet", "--checkpoint", S(f.ckpt_dir), "--arch", "smallest"],
    _CKPT,
    names=lambda f: f.ckpt_dir,
)
case(
    "checkpoint/garbage-in-folder/export",
    lambda f: ["export", "--checkpoint", S(f.ckpt_dir), "--arch", "largest", "--out", S(f.root / "ex2")],
    _CKPT,
    names=lambda f: f.ckpt_dir,
)
case(
    "checkpoint/garbage-in-folder/search",
    lambda f: [
        "search",
        "--supernet",
        S(f.ckpt_dir),
        "--lut",
        S(f.luts["good"]),
        "--target",
        S(f.target),
        "--objective",
        "accuracy",
        "--constraint",
        "latency_ms<=1",
        "--out",
        S(f.root / "so"),
    ],
    _CKPT,
    names=lambda f: f.ckpt_dir,
)


# -- running them -----------------------------------------------------------------------------------
CASE_SECONDS = 60  # a case slower than this counts as a hang


@dataclass
class Outcome:
    code: int | None
    err: str
    traceback: str | None = None
    hung: bool = False


class _Hang(BaseException):
    """Raised by the alarm of a case that ran past CASE_SECONDS (a BaseException: nothing catches it)."""


def _run(argv: list[str], env: dict[str, str], tmp: Path, monkeypatch, capsys) -> Outcome:
    import tempfile

    from nas.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    tmp.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # work folders (and their stale-folder sweep) stay private
    capsys.readouterr()

    def alarm(signum, frame):
        raise _Hang(f"ran past {CASE_SECONDS} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    except _Hang:
        return Outcome(None, capsys.readouterr().err, hung=True)
    except BaseException as exc:  # noqa: BLE001 - an escaping exception is what the campaign counts
        import traceback

        return Outcome(None, capsys.readouterr().err, "".join(traceback.format_exception(exc)))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return Outcome(code, capsys.readouterr().err)


_RESULTS: dict[str, str] = {}  # case name -> "clean" / "traceback" / "hang" / "wrong"


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_bad_input_file_is_a_one_line_error(c: Case, files: Files, monkeypatch, capsys):
    argv = c.argv(files)
    env = {k: v(files) for k, v in c.env.items()}
    out = _run(argv, env, files.root / "tmp", monkeypatch, capsys)
    if out.hung:
        _RESULTS[c.name] = "hang"
        pytest.fail(f"{c.name}: ran past {CASE_SECONDS} s (a hang)")
    if out.traceback is not None:
        _RESULTS[c.name] = "traceback"
        pytest.fail(f"{c.name}: traceback\n{out.traceback}")
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    expect = c.expect(files) if callable(c.expect) else c.expect
    named = c.names(files) if c.names is not None else None
    ok = out.code == 2 and len(lines) == 1 and "Traceback" not in out.err and expect in lines[0]
    ok = ok and (named is None or str(named) in lines[0])
    _RESULTS[c.name] = "clean" if ok else "wrong"
    assert out.code == 2, f"{c.name}: exit {out.code}, stderr {out.err!r}"
    assert len(lines) == 1, f"{c.name}: {len(lines)} lines on stderr: {out.err!r}"
    assert expect in lines[0], f"{c.name}: expected {expect!r} in {lines[0]!r}"
    assert ok, f"{c.name}: the message does not name {named}: {lines[0]!r}"


def test_campaign_counts(capsys):
    """The campaign's size and the counts (run after the cases: pytest keeps file order)."""
    assert len(CASES) >= 80
    assert len({c.name for c in CASES}) == len(CASES)
    if len(_RESULTS) == len(CASES):
        counts = {k: sum(v == k for v in _RESULTS.values()) for k in ("clean", "traceback", "hang", "wrong")}
        with capsys.disabled():
            print(
                f"\nbad-input files campaign: {len(CASES)} cases, {counts['clean']} clean one-line errors, "
                f"{counts['traceback']} tracebacks, {counts['hang']} hangs, {counts['wrong']} wrong exit code / "
                f"message (silent wrong results included)"
            )
        assert counts == {"clean": len(CASES), "traceback": 0, "hang": 0, "wrong": 0}


def test_the_campaign_inputs_are_bad_for_the_stated_reason(files):
    """Guards against cases passing for the wrong reason: the good inputs next to them work."""
    from hw_profiles import load_target
    from latency_lut.db import open_lut
    from spaces import load_space

    assert load_space(files.tiny).name == "tiny"
    assert load_target(str(files.target)).name == "fast-int8"
    with open_lut(files.luts["good"]) as db:
        assert len(db.rows()) == 400
    from latency_lut.manifest import load_manifest

    good = files.root / "blocks" / "good"
    good.mkdir()
    for p in ("blocks", "networks"):
        (good / p).mkdir()
    src = files.blocks["version"] / "manifest.json"
    data = json.loads(src.read_text())
    data["version"] = 1
    (good / "manifest.json").write_text(json.dumps(data))
    assert len(load_manifest(good).blocks) == 1  # the base manifest of every block-folder case is valid
