"""A tiny trained supernet checkpoint and a synthetic latency LUT for it, for the hardware-aware
search tests (``tests/nas/search/test_supernet_evaluator.py``, ``tests/nas/test_cli_search_hw.py``)."""

from __future__ import annotations

import threading
from pathlib import Path

TARGET = "cpu-ort-int8"  # built in; only its fingerprint on this machine is computed (nothing is measured)
TRAIN_LIMIT = 400  # 40 validation images at the default fraction of 0.1

_lock = threading.Lock()
_built: dict[str, Path] = {}


def tiny_checkpoint(root: Path) -> Path:
    """Train (once per session) a tiny mobilenet supernet: one FP32 and one QAT epoch on 400
    Fashion-MNIST images, about 10 s on one core. Returns its training folder."""
    import torch

    from supernet.train import Trainer
    from tests.helpers import tiny_config

    with _lock:
        if "ckpt" in _built and (_built["ckpt"] / "checkpoint.safetensors").exists():
            return _built["ckpt"]
        out = Path(root) / "supernet"
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            Trainer(
                tiny_config(train_limit=TRAIN_LIMIT, test_limit=64, batch_size=50),
                out,
                progress=False,
                log=lambda _: None,
            ).run()
        finally:
            torch.set_num_threads(threads)
        _built["ckpt"] = out
        return out


def block_latency(block) -> float:
    """A synthetic latency (ms) growing with the block's multiply-accumulates."""
    kw = block.kwargs
    k = int(kw.get("kernel", 1) or 1)
    expand = float(kw.get("expand", 1.0) or 1.0)
    macs = block.cin * block.cout * block.h_out * block.w_out * k * k * expand
    return 0.01 + 2e-7 * macs


def fake_lut(path: Path, space, target: str = TARGET) -> Path:
    """A LUT of every block of ``space`` for ``target`` as fingerprinted on this machine, with
    :func:`block_latency` rows (no measurement), so that ``--lut path --target target`` works here."""
    from hw_profiles import Stats, load_target, target_fingerprint
    from latency_lut.db import open_lut
    from latency_lut.keys import block_key, overhead_key, quantize_key
    from latency_lut.manifest import space_record

    t = load_target(target)
    fp = target_fingerprint(t)
    c, h, w = space.input_shape
    with open_lut(path, "w") as db:
        db.register_fingerprint(fp)
        db.register_space(space_record(space))
        run = db.begin_run(fp.id, "synthetic")
        rows = {block_key(b, t.batch): (b.op, block_latency(b)) for b in space.enumerate_blocks()}
        rows[overhead_key(t.batch)] = ("pseudo", 0.005)
        rows[quantize_key(c, h, w, t.batch)] = ("pseudo", 0.002)
        for key, (op, ms) in rows.items():
            db.insert(fp.id, key, op, op, Stats(ms, ms, 0.0, ms, 1, 0.0, 1, True), run)
        db.end_run(run, len(rows))
    return Path(path)
