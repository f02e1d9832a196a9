"""supernet: quantized-for-all weight-sharing supernets over the DSL's conv spaces.

Typical use::

    from spaces import create_space
    from supernet import Supernet, TrainConfig, Trainer, load_supernet, recalibrate_bn

    Trainer(TrainConfig(space="mobilenet", epochs=8, qat_epochs=2), "runs/mbv3").run()
    net, meta = load_supernet("runs/mbv3")
    arch = net.space.sample(0)
    model = net.subnet(arch)               # standalone, fake-quantized, learned scales
    recalibrate_bn(model, batches)         # the subnet's own BN statistics
    quant.export_onnx(model, "subnet.int8.onnx", (1, 1, 28, 28))

Modules: :mod:`supernet.model` (the elastic supernet and extraction), :mod:`supernet.train`
(sandwich rule, in-place distillation, QAT stage, checkpoints, DDP), :mod:`supernet.bn`,
:mod:`supernet.evaluate`, :mod:`supernet.data`, :mod:`supernet.checkpoint`,
:mod:`supernet.distributed`.
"""

from __future__ import annotations

from supernet._archs import extreme_structure, largest_arch, smallest_arch
from supernet.bn import recalibrate_bn
from supernet.checkpoint import read_checkpoint, write_checkpoint
from supernet.errors import CheckpointError, SupernetError, TrainingConfigError, UntrainedQuantizerError
from supernet.evaluate import evaluate_arch, onnx_accuracy, torch_accuracy
from supernet.model import Supernet
from supernet.train import TrainConfig, Trainer, load_supernet

__all__ = [
    "CheckpointError",
    "Supernet",
    "SupernetError",
    "TrainConfig",
    "Trainer",
    "TrainingConfigError",
    "UntrainedQuantizerError",
    "evaluate_arch",
    "extreme_structure",
    "largest_arch",
    "load_supernet",
    "onnx_accuracy",
    "read_checkpoint",
    "recalibrate_bn",
    "smallest_arch",
    "torch_accuracy",
    "write_checkpoint",
]
