"""``metrics.jsonl`` after a kill at an epoch's end: one line per checkpointed epoch, none lost, none repeated.

An epoch is finished once its checkpoint is written; its metrics line follows. A run killed between the
two (or while writing the line, or, as runs did before, between the line and the checkpoint, so that
the epoch ran again and its line was written twice) resumes with the lines the checkpoint's history holds.
"""

from __future__ import annotations

import json

import pytest

from supernet.checkpoint import read_checkpoint
from supernet.train import METRICS_NAME, Trainer
from tests.helpers import tiny_config


def _cfg():
    return tiny_config(epochs=2, qat_epochs=0, train_limit=64, test_limit=32, eval_every=0)


def _epochs(folder):
    return [json.loads(ln)["epoch"] for ln in (folder / METRICS_NAME).read_text().splitlines()]


def test_killed_after_the_checkpoint_before_the_line(tmp_path, monkeypatch):
    def killed(self, record):
        raise KeyboardInterrupt  # the process dies here: checkpoint written, line not

    monkeypatch.setattr(Trainer, "_write_metrics", killed)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(), tmp_path, progress=False, log=lambda s: None).run()
    monkeypatch.undo()
    assert read_checkpoint(tmp_path)[0]["state"]["epoch"] == 1
    assert not (tmp_path / METRICS_NAME).exists()

    trainer = Trainer(_cfg(), tmp_path, resume=True, progress=False, log=lambda s: None)
    assert _epochs(tmp_path) == [1]  # the checkpointed epoch's line, from its history
    trainer.run()
    assert _epochs(tmp_path) == [1, 2]
    assert [json.loads(ln) for ln in (tmp_path / METRICS_NAME).read_text().splitlines()] == trainer.history


def test_repeated_and_cut_lines_are_made_to_agree_with_the_checkpoint(tmp_path):
    cfg = tiny_config(epochs=1, qat_epochs=0, train_limit=64, test_limit=32, eval_every=0)
    Trainer(cfg, tmp_path, progress=False, log=lambda s: None).run()
    path = tmp_path / METRICS_NAME
    line = path.read_text()
    path.write_text(line + line + line[: len(line) // 2])  # a repeated epoch and a cut-off line
    trainer = Trainer(cfg, tmp_path, resume=True, progress=False, log=lambda s: None)
    assert path.read_text() == line
    assert _epochs(tmp_path) == [1] and len(trainer.history) == 1
