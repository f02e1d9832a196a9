"""DARTS on the NAS-Bench-201 cell, with sharpDARTS' cosine power annealing and Max-W as options.

The supernet is the benchmark's macro network (stem, three stages of ``cells`` cells, residual
reductions) whose every cell edge is a *mixed op* over the five cell ops, sharing one set of
architecture parameters ``alpha`` (6 edges x 5 ops) across cells:

* DARTS: ``out = sum_i softmax(alpha)_i * op_i(x)``;
* Max-W (sharpDARTS): ``out = sum_i (1 - max_j w_j + w_i) * op_i(x)`` with ``w = softmax(alpha)``.

Weights are trained on one half of the training data and ``alpha`` on the other (bi-level):
first order (``alpha`` follows the validation gradient at the current weights) or second order
(the unrolled gradient with the finite-difference Hessian-vector product of the DARTS paper).
The weights' learning rate follows cosine annealing or cosine power annealing
(``c(e) = (1 + cos(pi e / E)) / 2``, ``s = p^(c+1)`` normalised to [0, 1],
``lr = min_lr + (max_lr - min_lr) * s``, p = 10).

The genotype is derived as in DARTS (top-2 incoming edges per node by their strongest non-``none``
op, each kept edge taking its argmax op excluding ``none``; the dropped edges become ``none``) or
as in NAS-Bench-201's own search code (every edge takes its argmax op, ``none`` included). Both are
reported, as :class:`~spaces.Arch` of the ``nb201`` space, ready for a table lookup.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hwnas.errors import ConfigError
from nas.search._registry import register_searcher
from nas.search.base import Searcher, SearchExhausted
from spaces.arch import Arch
from spaces.catalog import NB201_EDGES, NB201_OPS

__all__ = ["DartsConfig", "DartsResult", "DartsSearcher", "cosine_power_annealing", "derive_genotype", "run_darts"]


@dataclass
class DartsConfig:
    """Settings of one DARTS search. The defaults are a small search meant for a CPU (about 940
    first-order steps on a 4-channel supernet, Fashion-MNIST); ``benchmarks/bench_search.py`` uses
    a larger one (8 channels, 20,000 images, 15 epochs, second order) on a GPU."""

    dataset: str = "fashion_mnist"
    train_size: int = 6000  # split in half: weights / architecture
    epochs: int = 10
    batch_size: int = 32
    channels: int = 4
    cells: int = 1  # cells per stage (the benchmark uses 5)
    order: int = 1  # 1: first-order DARTS, 2: second-order (unrolled)
    max_w: bool = False  # sharpDARTS Max-W weighting
    schedule: str = "cosine"  # "cosine" or "cosine_power" (sharpDARTS)
    power: float = 10.0  # p of cosine power annealing
    w_lr: float = 0.025
    w_min_lr: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    a_lr: float = 3e-4
    a_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    derive: str = "darts"  # "darts" (top-2 edges, no none) or "argmax" (NAS-Bench-201's rule)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None

    def check(self) -> None:
        if self.order not in (1, 2):
            raise ConfigError(f"DARTS order must be 1 or 2, got {self.order}")
        if self.schedule not in ("cosine", "cosine_power"):
            raise ConfigError(f"DARTS schedule must be cosine or cosine_power, got {self.schedule!r}")
        if self.derive not in ("darts", "argmax"):
            raise ConfigError(f"DARTS derive must be darts or argmax, got {self.derive!r}")
        for name in ("train_size", "epochs", "batch_size", "channels", "cells"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DARTS {name} must be >= 1, got {getattr(self, name)}")
        if self.train_size < 2 * self.batch_size:
            raise ConfigError(f"DARTS train_size must be at least 2 x batch_size ({2 * self.batch_size})")
        if self.power <= 1:
            raise ConfigError(f"cosine power annealing needs power > 1, got {self.power}")


@dataclass
class DartsResult:
    """A finished DARTS search: the derived cells, the final alphas and the training history."""

    arch: Arch  # the genotype by ``config.derive``
    arch_darts: Arch  # DARTS rule
    arch_argmax: Arch  # NAS-Bench-201 rule
    weights: list[list[float]]  # softmax(alpha) per edge (NB201_EDGES order, NB201_OPS order)
    history: list[dict[str, float]]
    config: DartsConfig
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from spaces.builtin import nb201_arch_str

        return {
            "arch": self.arch.to_dict(),
            "arch_str": nb201_arch_str(self.arch),
            "arch_str_darts": nb201_arch_str(self.arch_darts),
            "arch_str_argmax": nb201_arch_str(self.arch_argmax),
            "weights": {e: dict(zip(NB201_OPS, [round(x, 4) for x in w])) for e, w in zip(NB201_EDGES, self.weights)},
            "history": self.history,
            "config": asdict(self.config),
            "seconds": round(self.seconds, 2),
            **self.info,
        }


def cosine_power_annealing(progress: float, max_lr: float, min_lr: float, power: float = 10.0) -> float:
    """sharpDARTS' cosine power annealing at ``progress`` = e / E in [0, 1]."""
    c = (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0))) / 2.0
    s = (power ** (c + 1.0) - power) / (power**2 - power)
    return min_lr + (max_lr - min_lr) * s


def cosine_annealing(progress: float, max_lr: float, min_lr: float) -> float:
    c = (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0))) / 2.0
    return min_lr + (max_lr - min_lr) * c


def derive_genotype(weights: Sequence[Sequence[float]], rule: str = "darts") -> Arch:
    """The nb201 arch of per-edge op weights (``NB201_EDGES`` x ``NB201_OPS``); see the module docstring."""
    none = NB201_OPS.index("none")
    ops: dict[str, str] = {}
    if rule == "argmax":
        for e, w in zip(NB201_EDGES, weights):
            ops[e] = NB201_OPS[max(range(len(w)), key=lambda i: w[i])]
    elif rule == "darts":
        best = {}
        for e, w in zip(NB201_EDGES, weights):
            i = max((i for i in range(len(w)) if i != none), key=lambda i: w[i])
            best[e] = (w[i], NB201_OPS[i])
        for node in (1, 2, 3):
            edges = [e for e in NB201_EDGES if e.startswith(f"e{node}_")]
            keep = sorted(edges, key=lambda e: -best[e][0])[:2]
            for e in edges:
                ops[e] = best[e][1] if e in keep else "none"
    else:
        raise ConfigError(f"unknown genotype rule {rule!r} (darts, argmax)")
    from spaces.builtin.nb201 import NB201_PATHS

    return Arch({NB201_PATHS[e]: ops[e] for e in NB201_EDGES})


# -- the supernet (torch) ---------------------------------------------------------------------
def _build_supernet(cfg: DartsConfig, in_chans: int, num_classes: int) -> Any:
    import torch
    import torch.nn as nn

    from spaces.ops import ReLUConvBN, nb201_op

    class MixedOp(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.ops = nn.ModuleList(nb201_op(name, c) for name in NB201_OPS)

        def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return sum(w[i] * op(x) for i, op in enumerate(self.ops))

    class SearchCell(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.edges = nn.ModuleList(MixedOp(c) for _ in NB201_EDGES)

        def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
            nodes = [x]
            k = 0
            for i in range(1, 4):  # node i sums the edges from nodes 0 .. i-1
                total = self.edges[k](nodes[0], weights[k])
                for j in range(1, i):
                    total = total + self.edges[k + j](nodes[j], weights[k + j])
                k += i
                nodes.append(total)
            return nodes[3]

    class Reduction(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.a = ReLUConvBN(cin, cout, 3, 2)
            self.b = ReLUConvBN(cout, cout, 3, 1)
            self.short = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x)) + self.short(x)

    class Supernet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = cfg.channels
            self.stem = nn.Sequential(nn.Conv2d(in_chans, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
            layers: list[nn.Module] = []
            for stage in range(3):
                if stage:
                    layers.append(Reduction(c, 2 * c))
                    c *= 2
                layers.extend(SearchCell(c) for _ in range(cfg.cells))
            self.layers = nn.ModuleList(layers)
            self.last = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
            self.classifier = nn.Linear(c, num_classes)
            self.alpha = nn.Parameter(1e-3 * torch.randn(len(NB201_EDGES), len(NB201_OPS)))

        def op_weights(self) -> torch.Tensor:
            w = torch.softmax(self.alpha, dim=-1)
            if cfg.max_w:
                w = 1.0 - w.max(dim=-1, keepdim=True).values + w
            return w

        def weight_params(self) -> list[nn.Parameter]:
            return [p for n, p in self.named_parameters() if n != "alpha"]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            w = self.op_weights()
            x = self.stem(x)
            for layer in self.layers:
                x = layer(x, w) if isinstance(layer, SearchCell) else layer(x)
            x = self.last(x).mean(dim=(2, 3))
            return self.classifier(x)

    return Supernet()


def _second_order_alpha_grad(model: Any, xt: Any, yt: Any, xv: Any, yv: Any, eta: float, wd: float) -> None:
    """Set ``model.alpha.grad`` to the unrolled DARTS gradient (finite-difference Hessian term)."""
    import torch
    import torch.nn.functional as F

    params = model.weight_params()
    backup = [p.detach().clone() for p in params]
    loss = F.cross_entropy(model(xt), yt)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    with torch.no_grad():  # one virtual SGD step: w' = w - eta * (dL_train/dw + wd * w)
        for p, g in zip(params, grads):
            p.sub_(eta * ((g if g is not None else 0.0) + wd * p))
    lv = F.cross_entropy(model(xv), yv)
    out = torch.autograd.grad(lv, [model.alpha, *params], allow_unused=True)
    dalpha = out[0]
    dw = [g if g is not None else torch.zeros_like(p) for g, p in zip(out[1:], params)]
    norm = torch.sqrt(sum(((g * g).sum() for g in dw), torch.zeros((), device=dw[0].device)))
    eps = 0.01 / (float(norm) + 1e-12)
    hv = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for p, b, g in zip(params, backup, dw):
                p.copy_(b + sign * eps * g)
        lt = F.cross_entropy(model(xt), yt)
        hv.append(torch.autograd.grad(lt, model.alpha)[0])
    with torch.no_grad():
        for p, b in zip(params, backup):
            p.copy_(b)
    model.alpha.grad = dalpha - eta * (hv[0] - hv[1]) / (2.0 * eps)


def run_darts(config: DartsConfig | None = None, **overrides: Any) -> DartsResult:
    """Run one DARTS search on real data (Fashion-MNIST by default); returns the derived cells."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    cfg = config or DartsConfig()
    if overrides:
        cfg = DartsConfig(**{**asdict(cfg), **overrides})
    cfg.check()
    from nas.search.data import load_arrays

    start = time.perf_counter()
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        torch.manual_seed(cfg.seed)
        x, y, _, _ = load_arrays(cfg.dataset, cfg.train_size, 1, seed=cfg.seed)
        half = len(x) // 2
        dev = torch.device(cfg.device)
        xw, yw = torch.from_numpy(x[:half]).to(dev), torch.from_numpy(y[:half]).to(dev)
        xa, ya = torch.from_numpy(x[half:]).to(dev), torch.from_numpy(y[half:]).to(dev)
        model = _build_supernet(cfg, int(x.shape[1]), int(y.max()) + 1).to(dev)
        w_opt = torch.optim.SGD(
            model.weight_params(), lr=cfg.w_lr, momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay
        )
        a_opt = torch.optim.Adam([model.alpha], lr=cfg.a_lr, betas=(0.5, 0.999), weight_decay=cfg.a_weight_decay)
        g = torch.Generator(device="cpu").manual_seed(cfg.seed)
        steps = half // cfg.batch_size
        total = cfg.epochs * steps
        history: list[dict[str, float]] = []
        step = 0
        for epoch in range(cfg.epochs):
            pw = torch.randperm(half, generator=g).to(dev)
            pa = torch.randperm(len(xa), generator=g).to(dev)
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            for b in range(steps):
                progress = step / max(total, 1)
                lr = (
                    cosine_power_annealing(progress, cfg.w_lr, cfg.w_min_lr, cfg.power)
                    if cfg.schedule == "cosine_power"
                    else cosine_annealing(progress, cfg.w_lr, cfg.w_min_lr)
                )
                for group in w_opt.param_groups:
                    group["lr"] = lr
                iw = pw[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                ia = pa[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                # architecture step on the held-out half
                a_opt.zero_grad(set_to_none=True)
                if cfg.order == 2:
                    model.zero_grad(set_to_none=True)
                    _second_order_alpha_grad(model, xw[iw], yw[iw], xa[ia], ya[ia], lr, cfg.w_weight_decay)
                else:
                    F.cross_entropy(model(xa[ia]), ya[ia]).backward()
                a_opt.step()
                # weight step
                w_opt.zero_grad(set_to_none=True)
                model.alpha.grad = None
                out = model(xw[iw])
                loss = F.cross_entropy(out, yw[iw])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.weight_params(), cfg.grad_clip)
                w_opt.step()
                loss_sum += float(loss.detach()) * len(iw)
                correct += int((out.argmax(1) == yw[iw]).sum())
                seen += len(iw)
                step += 1
            model.eval()
            with torch.no_grad():
                vc = sum(
                    int((model(xa[i : i + 256]).argmax(1) == ya[i : i + 256]).sum()) for i in range(0, len(xa), 256)
                )
                w = torch.softmax(model.alpha, -1).cpu().numpy()
            ent = float(-(w * np.log(w + 1e-12)).sum(1).mean())
            history.append(
                {
                    "epoch": epoch + 1,
                    "lr": lr,
                    "train_loss": loss_sum / max(seen, 1),
                    "train_acc": 100.0 * correct / max(seen, 1),
                    "val_acc": 100.0 * vc / len(xa),
                    "alpha_entropy": ent,
                    "skip_weight": float(w[:, NB201_OPS.index("skip_connect")].mean()),
                }
            )
        weights = torch.softmax(model.alpha.detach(), -1).cpu().numpy().tolist()
    finally:
        torch.set_num_threads(old_threads)
    a_darts = derive_genotype(weights, "darts")
    a_argmax = derive_genotype(weights, "argmax")
    return DartsResult(
        a_darts if cfg.derive == "darts" else a_argmax,
        a_darts,
        a_argmax,
        weights,
        history,
        cfg,
        time.perf_counter() - start,
    )


@register_searcher("darts")
class DartsSearcher(Searcher):
    """DARTS as a searcher: the first ask runs the search and returns the derived cell; later asks
    raise :class:`~nas.search.SearchExhausted`. Keyword arguments are :class:`DartsConfig` fields
    (``seed`` included); the space must be the ``nb201`` cell space."""

    name = "darts"
    multi_objective = False

    def __init__(
        self,
        space: Any,
        objectives: Sequence[Any] | Any = ("accuracy",),
        constraints: Sequence[Any] = (),
        seed: int | None = None,
        evaluate_space: Any = None,
        **config: Any,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        from spaces.builtin.nb201 import NB201_PATHS

        paths = [d.path for d in space.decisions()]
        if paths != [NB201_PATHS[e] for e in NB201_EDGES] or any(
            tuple(d.options) != NB201_OPS for d in space.decisions()
        ):
            raise ConfigError(f"DARTS searches the nb201 cell space; {space.name!r} is not one")
        if self.constraints:
            raise ConfigError("DARTS does not take constraints")
        fields = set(DartsConfig.__dataclass_fields__)
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ConfigError(f"unknown DARTS option(s) {unknown}; options: {sorted(fields)}")
        if seed is not None:
            config.setdefault("seed", seed)
        self.config = DartsConfig(**config)
        self.config.check()
        self.result: DartsResult | None = None

    def ask(self) -> Arch:
        if self.result is not None:
            raise SearchExhausted("DARTS derives one cell per search")
        self.result = run_darts(self.config)
        return self.space.validate(self.result.arch)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **asdict(self.config)}
