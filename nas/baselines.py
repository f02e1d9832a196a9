"""Hand-picked baselines for Fashion-MNIST: what a user would train instead of searching.

Three networks at ``1×28×28``, 10 classes, and the one training recipe they share:

* ``plain_cnn``: five 3×3 convs, all ReLU: conv 1→32, conv 32→32, maxpool 2, conv 32→64,
  conv 64→64, maxpool 2, conv 64→128, global average pool, linear 128→10; every conv without
  bias, followed by BatchNorm and ReLU.
* ``resnet18`` and ``mobilenetv3_large_100``: timm's models created with ``in_chans=1,
  num_classes=10`` and nothing else changed (no pretrained weights; works offline).

:class:`BaselineRecipe` (the defaults are the reference recipe): inputs normalised with mean
0.2860 / std 0.3530, random horizontal flips, batch 128, SGD (momentum 0.9, Nesterov, weight
decay 5e-4), one-cycle schedule to a peak learning rate of 0.1, 5 epochs.

:func:`prepare_baseline` takes one baseline through the whole recipe in a folder of its own,
resumably: training (checkpointed every epoch), FP32 ONNX export (checked against torch), then
onnxruntime static post-training quantization (QDQ, per-channel symmetric s8 weights, asymmetric
u8 activations, after ``quant_pre_process``), and optionally the test accuracy of both files in
onnxruntime. :func:`train_recipe` / :func:`quant_recipe` are the keys the finished stages are
recorded under (and :func:`baseline_dir` a folder name from the first), so that a caller can keep
many recipes side by side (``benchmarks/bench_pipeline.py``) or one per folder (``nas run``).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn

from hwnas.errors import ConfigError, HwnasError, UnknownNameError
from hwnas.io import atomic_write

if TYPE_CHECKING:
    from quant.training import ModelLoop, TrainConfig

__all__ = [
    "BASELINES",
    "CALIB_METHODS",
    "RECIPE_VERSION",
    "BaselineError",
    "FMNIST_RECIPE_MEAN",
    "FMNIST_RECIPE_STD",
    "BaselineRecipe",
    "PlainCNN",
    "PreparedBaseline",
    "baseline_dir",
    "create_baseline",
    "load_done",
    "normalize_fmnist",
    "onnx_accuracy",
    "onnx_params",
    "prepare_baseline",
    "quant_recipe",
    "recipe_tag",
    "train_baseline",
    "train_recipe",
]

FMNIST_RECIPE_MEAN, FMNIST_RECIPE_STD = 0.2860, 0.3530
"""The reference recipe's input normalisation (pixels scaled to [0, 1] first)."""


class BaselineError(HwnasError):
    """A baseline cannot be trained (too little data, a diverging run)."""


BASELINES: tuple[str, ...] = ("plain_cnn", "resnet18", "mobilenetv3_large_100")
"""Names :func:`create_baseline` knows."""


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class PlainCNN(nn.Module):
    """The plain 5-conv ReLU CNN of the baseline recipe (about 0.14 M parameters)."""

    def __init__(self, in_chans: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn_relu(in_chans, 32),
            *_conv_bn_relu(32, 32),
            nn.MaxPool2d(2),
            *_conv_bn_relu(32, 64),
            *_conv_bn_relu(64, 64),
            nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def create_baseline(name: str, *, in_chans: int = 1, num_classes: int = 10) -> nn.Module:
    """A freshly initialised baseline by name (see :data:`BASELINES`); seed torch first."""
    if name == "plain_cnn":
        return PlainCNN(in_chans, num_classes)
    if name in BASELINES:
        import timm

        return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=num_classes)
    raise UnknownNameError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")


def normalize_fmnist(
    images: np.ndarray, mean: float = FMNIST_RECIPE_MEAN, std: float = FMNIST_RECIPE_STD
) -> np.ndarray:
    """``uint8 (N, 28, 28)`` Fashion-MNIST images as normalised ``float32 (N, 1, 28, 28)``."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    return ((x - mean) / std).astype(np.float32)[:, None]


@dataclass(frozen=True)
class BaselineRecipe:
    """How every baseline is trained (the defaults are the reference recipe).

    The one-cycle schedule is torch's ``OneCycleLR`` with its defaults (30 % warm-up from
    ``peak_lr / 25``, cosine annealing to ``peak_lr / 25e4``; computed by
    :class:`quant.loop.Schedule`, the same values) and a fixed momentum
    (``cycle_momentum=False``), so that SGD's momentum stays 0.9 as the recipe says. Each epoch
    draws a seeded permutation and a seeded flip mask; the last incomplete batch is dropped.
    """

    epochs: int = 5
    batch_size: int = 128
    peak_lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    flip: bool = True
    mean: float = FMNIST_RECIPE_MEAN
    std: float = FMNIST_RECIPE_STD
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"recipe: epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}")
        if not self.peak_lr > 0:
            raise ConfigError(f"recipe: peak_lr must be positive, got {self.peak_lr}")

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "schedule": "onecycle(pct_start=0.3, div_factor=25, final_div_factor=1e4, cycle_momentum=False)",
        }

    def train_config(self, channels_last: bool | None = None) -> TrainConfig:
        """The recipe as the one training loop's configuration (:class:`quant.training.TrainConfig`:
        ``peak_lr`` the peak of a one-cycle schedule, plain cross-entropy)."""
        from quant.training import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.peak_lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
            schedule="onecycle",
            seed=self.seed,
            channels_last=channels_last,
        )


def train_baseline(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    recipe: BaselineRecipe = BaselineRecipe(),
    *,
    channels_last: bool | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on normalised ``(N, C, H, W)`` images with ``recipe``.

    The one training loop (:class:`quant.training.ModelLoop`: cross-entropy, SGD, the recipe's
    one-cycle schedule) over the recipe's data order (:class:`supernet.data.DataOrder`: a seeded
    permutation and flip mask per epoch). ``channels_last`` (default: on CPU) runs the convolutions
    on NHWC tensors (:func:`quant.training.channels_last_convs`), 1.5–2× faster on CPU.
    ``checkpoint``: a file written (atomically) after every epoch and resumed from when it exists;
    the batches of an epoch depend on ``(seed, epoch)`` only, so a resumed run trains what an
    uninterrupted one does. The caller keys the file by recipe and data. Returns ``{"steps",
    "seconds", "epoch_losses", "resumed_from_epoch"}``; the model is left in evaluation mode.
    """
    from quant.training import ModelLoop
    from supernet.data import DataOrder, TensorData

    x = torch.as_tensor(np.array(images, dtype=np.float32, copy=True))
    y = torch.as_tensor(np.array(labels, dtype=np.int64, copy=True))
    data = TensorData(name="train", split="train", images=x, labels=y, num_classes=int(y.max()) + 1 if len(y) else 0)
    if len(data) < recipe.batch_size:
        raise BaselineError(f"{len(data)} training images, fewer than one batch of {recipe.batch_size}")
    ckpt = Path(checkpoint) if checkpoint is not None else None

    def end_of_epoch(record: dict[str, Any]) -> None:
        if not math.isfinite(record["loss"]):
            raise BaselineError(f"training diverged in epoch {record['epoch']} (loss {record['loss']})")
        if ckpt is not None and loop.epoch < recipe.epochs:
            state = {
                "model": model.state_dict(),
                "loop": loop.state_dict(),
                "tensors": loop.resume_tensors(model.named_parameters()),
                "epochs": recipe.epochs,
                "steps_per_epoch": loop.steps_per_epoch,
                "seconds": loop.seconds(),
            }
            atomic_write(ckpt, lambda tmp: torch.save(state, tmp))

    order = DataOrder(data, recipe.batch_size, recipe.seed, flip=recipe.flip)
    loop = ModelLoop(model, order, recipe.train_config(channels_last), log=log, on_epoch=end_of_epoch)
    if ckpt is not None and ckpt.is_file():
        _resume(loop, model, ckpt, recipe.epochs)
        if log is not None:
            log(f"resumed after epoch {loop.epoch}/{recipe.epochs} from {ckpt}")
    start = loop.epoch
    loop.fit()
    return {
        "steps": loop.schedule.total_steps,
        "seconds": loop.seconds(),
        "epoch_losses": [float(r["loss"]) for r in loop.history],
        "resumed_from_epoch": start,
    }


def _resume(loop: ModelLoop, model: nn.Module, ckpt: Path, epochs: int) -> None:
    """Continue ``loop`` from the checkpoint ``ckpt``, also one
    written before the baselines ran the one training loop (torch's optimizer state, epoch losses)."""
    state = torch.load(ckpt, map_location=loop.device, weights_only=True)
    if state.get("epochs") != epochs or state.get("steps_per_epoch") != loop.steps_per_epoch:
        raise BaselineError(
            f"{ckpt}: a checkpoint of another schedule ({state.get('epochs')} epochs "
            f"of {state.get('steps_per_epoch')} steps); delete it to start again"
        )
    model.load_state_dict(state["model"])
    if "loop" in state:
        loop.load_state_dict(state["loop"])
        params = dict(model.named_parameters())
        loop.restore_tensors(state["tensors"], params.__getitem__)
    else:  # the one-cycle scheduler's state is not needed: the schedule is a function of the step
        loop.optimizer.load_state_dict(state["optimizer"])
        done = int(state["epoch"])
        losses = [{"epoch": i + 1, "loss": float(v)} for i, v in enumerate(state["epoch_losses"])]
        loop.load_state_dict({"epoch": done, "global_step": done * loop.steps_per_epoch, "history": losses})
    loop.seconds_before = float(state["seconds"])


# ----------------------------------------------------------------------------------------------
# train, export, quantize (resumable)
# ----------------------------------------------------------------------------------------------
RECIPE_VERSION = 1
"""Part of every recipe key: bump when the training / export / quantization code changes what a
recipe produces (finished work of another version is then redone)."""

CALIB_METHODS: tuple[str, ...] = ("minmax", "percentile", "entropy")
"""onnxruntime ``quantize_static`` calibration methods :func:`prepare_baseline` accepts."""

QUANTIZER = (
    "onnxruntime quantize_static after quant_pre_process: QDQ, per-channel symmetric s8 weights, "
    "asymmetric u8 activations"
)


def train_recipe(
    name: str, recipe: BaselineRecipe, train_limit: int | None, *, data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything a trained baseline (and its FP32 ONNX) depends on: the key its training and
    export are recorded under. ``data``: a JSON-able description of the training images when
    ``train_limit`` alone does not say which they are (left out of the key when ``None``)."""
    key: dict[str, Any] = {
        "model": name,
        "recipe": recipe.to_dict(),
        "train_limit": train_limit,
        "version": RECIPE_VERSION,
    }
    if data is not None:
        key["data"] = dict(data)
    return key


def quant_recipe(calib: int, calib_method: str, seed: int) -> dict[str, Any]:
    """Everything the INT8 model of a trained baseline depends on (the key of its ``int8-*`` folder)."""
    return {
        "calib": calib,
        "calib_method": calib_method,
        "calib_seed": seed,
        "version": RECIPE_VERSION,
        "quantizer": QUANTIZER,
    }


def recipe_tag(key: Mapping[str, Any]) -> str:
    """A 12-hex-digit content hash of a recipe key (canonical JSON)."""
    from hwnas.io import canonical_json

    return hashlib.sha1(canonical_json(key).encode()).hexdigest()[:12]


def baseline_dir(work: str | os.PathLike[str], key: Mapping[str, Any]) -> Path:
    """``WORK/<model>-<hash of the training key>``: one folder per model and training recipe."""
    return Path(work) / f"{key['model']}-{recipe_tag(key)}"


def load_done(
    path: str | os.PathLike[str], key: Mapping[str, Any], files: tuple[Path, ...] | list[Path] = ()
) -> dict[str, Any] | None:
    """The JSON object at ``path`` when it records ``key`` (its ``"recipe"``) and every one of
    ``files`` exists; else None (missing, unreadable, another recipe: the work is to be done)."""
    from hwnas.io import read_json_file

    p = Path(path)
    if not p.is_file() or not all(Path(f).is_file() for f in files):
        return None
    try:
        data = read_json_file(p)
    except HwnasError:
        return None
    return data if isinstance(data, dict) and data.get("recipe") == dict(key) else None


def onnx_params(path: str | os.PathLike[str]) -> int:
    """Parameters of an ONNX model: the elements of its float initializers (batch norms folded)."""
    import onnx

    model = onnx.load(str(path))
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type in floats)


def onnx_accuracy(path: str | os.PathLike[str], x: np.ndarray, y: np.ndarray, threads: int = 1) -> float:
    """Top-1 accuracy (percent) of an ONNX model in onnxruntime (CPU) on images ``x``, labels ``y``."""
    import quant

    logits = quant.ort_predict(str(path), x, batch_size=256, threads=threads)
    if logits.ndim != 2 or len(logits) != len(y):
        raise BaselineError(f"{path}: expected (N, classes) logits, got shape {logits.shape}")
    return float((logits.argmax(axis=1) == np.asarray(y)).mean() * 100.0)


@dataclass
class PreparedBaseline:
    """A trained, exported and quantized baseline (what :func:`prepare_baseline` returns).

    Accuracies are percentages (``None`` unless test images were given); ``stages_run`` lists
    what this call did (``"train"``, ``"export"``, ``"quantize"``): empty when everything was
    found finished in ``folder``.
    """

    name: str
    folder: Path
    fp32_path: Path
    int8_path: Path
    params: int
    """Parameters of the FP32 ONNX model (batch norms folded)."""
    torch_params: int
    train: dict[str, Any]
    """``{"steps", "seconds", "epoch_losses", "resumed_from_epoch"}`` of the training."""
    calibration_images: int
    calib_method: str
    stages_run: list[str] = field(default_factory=list)
    fp32_acc: float | None = None
    int8_acc: float | None = None

    @property
    def cached(self) -> bool:
        """Whether the trained model was found (not trained by this call)."""
        return "train" not in self.stages_run

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": str(self.folder),
            "fp32_onnx": str(self.fp32_path),
            "int8_onnx": str(self.int8_path),
            "params": self.params,
            "torch_params": self.torch_params,
            "train": self.train,
            "calibration_images": self.calibration_images,
            "calib_method": self.calib_method,
            "stages_run": list(self.stages_run),
            "cached": self.cached,
            "fp32_acc": self.fp32_acc,
            "int8_acc": self.int8_acc,
        }


def _write_json(path: Path, obj: Any) -> None:
    from hwnas.io import atomic_write_text, canonical_json, json_safe

    atomic_write_text(path, canonical_json(json_safe(obj)) + "\n")


def prepare_baseline(
    name: str,
    recipe: BaselineRecipe,
    train_x: np.ndarray,
    train_y: np.ndarray,
    check_x: np.ndarray,
    out_dir: str | os.PathLike[str],
    *,
    train_key: Mapping[str, Any] | None = None,
    calib: int = 512,
    calib_method: str = "minmax",
    num_classes: int = 10,
    test_x: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
) -> PreparedBaseline:
    """Train, export (FP32 ONNX) and quantize (INT8 QDQ) baseline ``name`` in ``out_dir``, reusing
    whatever of it ``out_dir`` holds finished.

    ``train_x``: normalised ``float32 (N, C, H, W)`` training images (the ONNX input shape is
    ``(1, C, H, W)`` with a dynamic batch), ``train_y`` their labels; ``check_x``: a few images
    on which the FP32 ONNX file must agree with torch; ``calib`` training images (a seeded
    sample) calibrate ``quantize_static`` (``calib_method``: :data:`CALIB_METHODS`). With
    ``test_x`` / ``test_y`` the accuracies of both ONNX files are measured in onnxruntime
    (``threads`` intra-op threads; not cached: the caller records them).

    ``out_dir`` holds ``checkpoint.pt`` (+ ``checkpoint.json``, its key) while training, written
    every epoch, so an interrupted training resumes; then ``model.pt`` + ``train.json``, then
    ``model.fp32.onnx`` + ``export.json``; ``int8-<hash of the quantization key>/`` holds
    ``model.int8.onnx`` + ``quant.json``. Each JSON is written last (atomically) and records its
    key (``train_key``, default :func:`train_recipe` with the data's size; or
    :func:`quant_recipe`): a call skips every stage already finished with the same key, another
    calibration does not retrain, and a stage redone invalidates those after it.
    Raises :class:`BaselineError` (too few images, a diverging training, a bad export).
    """
    import torch

    import quant
    from quant.ort_baseline import ort_quantize_static

    say = log or (lambda _msg: None)
    if calib_method not in CALIB_METHODS:
        raise BaselineError(f"unknown calibration method {calib_method!r} (known: {', '.join(CALIB_METHODS)})")
    if calib < 1:
        raise BaselineError(f"calib: expected a positive number of images, got {calib}")
    x = np.asarray(train_x, dtype=np.float32)
    if x.ndim != 4 or len(x) != len(train_y):
        raise BaselineError(f"{name}: training images must be (N, C, H, W) with one label each, got {x.shape}")
    shape = tuple(int(d) for d in x.shape[1:])
    tkey = (
        dict(train_key)
        if train_key is not None
        else train_recipe(
            name,
            recipe,
            None,
            data={"train_images": len(train_y), "input_shape": list(shape), "num_classes": num_classes},
        )
    )
    qkey = quant_recipe(calib, calib_method, recipe.seed)
    folder = Path(out_dir)
    qdir = folder / f"int8-{recipe_tag(qkey)}"
    weights, fp32, int8 = folder / "model.pt", folder / "model.fp32.onnx", qdir / "model.int8.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    ran: list[str] = []
    trained = load_done(folder / "train.json", tkey, [weights])
    exported = load_done(folder / "export.json", tkey, [fp32]) if trained is not None else None
    quantized = load_done(qdir / "quant.json", qkey, [int8]) if exported is not None else None
    model = None
    if trained is None or exported is None:
        torch.manual_seed(recipe.seed)
        model = create_baseline(name, in_chans=shape[0], num_classes=num_classes)
    if trained is None:
        assert model is not None
        _drop_after(folder, "train")
        params = sum(p.numel() for p in model.parameters())
        say(f"{name}: training {params / 1e6:.2f} M parameters on {len(train_y)} images, {recipe.epochs} epochs")
        ckpt, ckpt_key = folder / "checkpoint.pt", folder / "checkpoint.json"
        if ckpt.is_file() and ckpt_key.is_file() and load_done(ckpt_key, tkey) is None:
            say(f"{name}: {ckpt} belongs to another recipe: training from the start")
            ckpt.unlink()
        _write_json(ckpt_key, {"recipe": tkey})
        result = train_baseline(model, x, train_y, recipe, checkpoint=ckpt, log=lambda s: say(f"{name}: {s}"))
        tmp = folder / ".model.pt.tmp"
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, weights)
        trained = {
            "recipe": tkey,
            "torch_params": params,
            "train": {k: result[k] for k in ("steps", "seconds", "epoch_losses", "resumed_from_epoch")},
        }
        _write_json(folder / "train.json", trained)
        ckpt.unlink(missing_ok=True)
        ckpt_key.unlink(missing_ok=True)
        ran.append("train")
    elif model is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        model.eval()
    if exported is None:
        assert model is not None
        _drop_after(folder, "export")
        quant.export_fp32_onnx(model, fp32, (1, *shape))
        check = np.ascontiguousarray(check_x, dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(check)).numpy()
        err = float(np.abs(ref - quant.ort_predict(fp32, check)).max())
        if err > 1e-3 * max(1.0, float(np.abs(ref).max())):
            raise BaselineError(f"{name}: the FP32 ONNX export differs from the torch model by {err:.3g}")
        exported = {"recipe": tkey, "onnx_params": onnx_params(fp32), "onnx_max_abs_err": err}
        _write_json(folder / "export.json", exported)
        ran.append("export")
    if quantized is None:
        rng = np.random.default_rng(recipe.seed)
        idx = np.sort(rng.choice(len(x), size=min(calib, len(x)), replace=False))
        ort_quantize_static(fp32, int8, x[idx], per_channel=True, method=calib_method)  # type: ignore[arg-type]
        quantized = {"recipe": qkey, "calibration_images": int(len(idx))}
        _write_json(qdir / "quant.json", quantized)
        ran.append("quantize")
    say(f"{name}: " + (f"ran {', '.join(ran)}" if ran else "trained, exported and quantized already") + f" ({folder})")
    out = PreparedBaseline(
        name=name,
        folder=folder,
        fp32_path=fp32,
        int8_path=int8,
        params=int(exported["onnx_params"]),
        torch_params=int(trained["torch_params"]),
        train=dict(trained["train"]),
        calibration_images=int(quantized["calibration_images"]),
        calib_method=calib_method,
        stages_run=ran,
    )
    if test_x is not None and test_y is not None:
        tx = np.asarray(test_x, dtype=np.float32)
        out.fp32_acc = onnx_accuracy(fp32, tx, np.asarray(test_y), threads)
        out.int8_acc = onnx_accuracy(int8, tx, np.asarray(test_y), threads)
    return out


def _drop_after(folder: Path, stage: str) -> None:
    """Remove what was made from an earlier result of ``stage`` ("train" or "export")."""
    if stage == "train":
        (folder / "export.json").unlink(missing_ok=True)
    for q in folder.glob("int8-*"):
        if q.is_dir():
            shutil.rmtree(q, ignore_errors=True)
