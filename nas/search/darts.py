"""DARTS on any DSL cell space, with sharpDARTS' cosine power annealing and Max-W as options.

The supernet is the space's own network with every choice inside its cells relaxed
(:mod:`nas.search.darts_relax`): each edge's (or node's) op choice becomes a *mixed op* over its
candidates, built by the DSL's op builders and wired by :class:`~spaces.Network`; an edge's input
choice becomes one mixed op per candidate input (all summed, as in the DARTS cell). Each mixed op
is a row of the architecture parameters ``alpha``, shared by every cell that shares the decisions
(the cells of a shared ``Repeat``, as in ``nb201`` and ``darts``):

* DARTS: ``out = sum_i softmax(alpha)_i * op_i(x)``;
* Max-W (sharpDARTS): ``out = sum_i (1 - max_j w_j + w_i) * op_i(x)`` with ``w = softmax(alpha)``.

Decisions outside cells (and the few inside that cannot be summed: merges, an input choice of a
node that concatenates its edges) are fixed to ``DartsConfig.fixed`` or their default, and
reported. A space without cells (a chain such as ``mobilenet``) is refused.

The search network: a registered space whose factory takes ``channels`` / ``cells`` (``nb201``,
``darts``) is rebuilt at ``DartsConfig.channels`` and ``.cells`` and at the data's input shape (the
small search network of DARTS; its decisions are the space's); any other space (a YAML file) is
searched as given, the images converted to its input shape.

Weights are trained on one half of the training data and ``alpha`` on the other (bi-level):
first order (``alpha`` follows the validation gradient at the current weights) or second order
(the unrolled gradient with the finite-difference Hessian-vector product of the DARTS paper).
The weights' learning rate follows cosine annealing or cosine power annealing
(``c(e) = (1 + cos(pi e / E)) / 2``, ``s = p^(c+1)`` normalised to [0, 1],
``lr = min_lr + (max_lr - min_lr) * s``, p = 10).

The genotype is derived as in DARTS (per node, the ``keep`` = 2 strongest of the edges that can be
``none``, by their strongest non-``none`` op, each kept edge taking that op and the others ``none``;
a node's pooled input choices take the strongest inputs) or as in NAS-Bench-201's own search code
(every mixed op takes its argmax, ``none`` included). Both are reported as :class:`~spaces.Arch`
of the searched space: valid under ``space.validate``, built by ``space.build``; for ``nb201``
with the benchmark's arch strings, ready for a table lookup.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError
from nas.search._registry import register_searcher
from nas.search.base import Searcher, SearchExhausted
from nas.search.darts_relax import Relaxation, relax_space
from spaces.arch import Arch
from spaces.catalog import NB201_EDGES, NB201_OPS

if TYPE_CHECKING:  # pragma: no cover
    from spaces import Space

__all__ = ["DartsConfig", "DartsResult", "DartsSearcher", "cosine_power_annealing", "derive_genotype", "run_darts"]


@dataclass
class DartsConfig:
    """Settings of one DARTS search. The defaults are a small search meant for a CPU (about 940
    first-order steps on a 4-channel nb201 supernet, Fashion-MNIST); ``benchmarks/bench_search.py``
    uses a larger one (8 channels, 20,000 images, 15 epochs, second order) on a GPU.

    ``channels`` / ``cells`` size the search network of a registered space whose factory takes
    them (``None``: the space's own); ``fixed`` sets decisions DARTS does not search (decision
    path → value; see :mod:`nas.search.darts_relax`); ``keep`` is the number of incoming edges
    the ``darts`` rule keeps per node among those that can be ``none``."""

    dataset: str = "fashion_mnist"
    train_size: int = 6000  # split in half: weights / architecture
    epochs: int = 10
    batch_size: int = 32
    channels: int | None = 4
    cells: int | None = 1  # cells per stage (the benchmark uses 5)
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
    keep: int = 2  # the darts rule: incoming edges kept per node
    fixed: dict[str, Any] = field(default_factory=dict)  # decisions not searched: path -> value
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
        for name in ("train_size", "epochs", "batch_size", "channels", "cells", "keep"):
            value = getattr(self, name)
            if value is None and name in ("channels", "cells"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DARTS {name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.fixed, dict):
            raise ConfigError(f"DARTS fixed must be a mapping of decision path to value, got {self.fixed!r}")
        if self.train_size < 2 * self.batch_size:
            raise ConfigError(f"DARTS train_size must be at least 2 x batch_size ({2 * self.batch_size})")
        if self.power <= 1:
            raise ConfigError(f"cosine power annealing needs power > 1, got {self.power}")


@dataclass
class DartsResult:
    """A finished DARTS search: the derived archs, the final op weights and the training history."""

    arch: Arch  # the genotype by ``config.derive``
    arch_darts: Arch  # DARTS rule
    arch_argmax: Arch  # NAS-Bench-201 rule
    weights: list[list[float]]  # softmax(alpha) per mixed op (``units``), over its ``candidates``
    history: list[dict[str, float]]
    config: DartsConfig
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    space: str = "nb201"  # the searched space's name
    units: list[str] = field(default_factory=list)  # the mixed ops' names
    candidates: list[list[str]] = field(default_factory=list)  # each mixed op's candidate labels
    fixed: dict[str, Any] = field(default_factory=dict)  # decisions not searched, with their value

    @property
    def is_nb201(self) -> bool:
        from spaces.builtin.nb201 import NB201_PATHS

        return self.space == "nb201" and set(self.arch) == set(NB201_PATHS.values())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"space": self.space, "arch": self.arch.to_dict()}
        if self.is_nb201:
            from spaces.builtin import nb201_arch_str

            out.update(
                arch_str=nb201_arch_str(self.arch),
                arch_str_darts=nb201_arch_str(self.arch_darts),
                arch_str_argmax=nb201_arch_str(self.arch_argmax),
                weights={e: dict(zip(NB201_OPS, [round(x, 4) for x in w])) for e, w in zip(NB201_EDGES, self.weights)},
            )
        else:
            out.update(
                arch_darts=self.arch_darts.to_dict(),
                arch_argmax=self.arch_argmax.to_dict(),
                weights={
                    u: dict(zip(labels, [round(x, 4) for x in w]))
                    for u, labels, w in zip(self.units, self.candidates, self.weights)
                },
            )
        return {
            **out,
            "fixed": dict(self.fixed),
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
    """The nb201 arch of per-edge op weights (``NB201_EDGES`` x ``NB201_OPS``); see the module
    docstring. (:meth:`Relaxation.derive <nas.search.darts_relax.Relaxation.derive>` is the same
    rule on any cell space.)"""
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


# -- the search network -------------------------------------------------------------------------
def search_space(space: Space, cfg: DartsConfig, in_chans: int, resolution: int, num_classes: int) -> Space:
    """The space DARTS trains: ``space`` rebuilt at ``cfg.channels`` / ``cfg.cells`` and the
    data's input shape when it is a registered space whose factory takes them and whose
    decisions stay the same, else ``space`` itself."""
    import inspect

    from spaces import create_space, get_space_factory

    if not space.factory_kwargs:
        return space
    try:
        params = inspect.signature(get_space_factory(space.name)).parameters
    except Exception:  # an unregistered name: a space built by hand
        return space
    kwargs = dict(space.factory_kwargs)
    for key, value in (("channels", cfg.channels), ("cells", cfg.cells)):
        if value is not None and key in params:
            kwargs[key] = value
    for key, value in (("in_chans", in_chans), ("resolution", resolution), ("num_classes", num_classes)):
        if key in params:
            kwargs[key] = value
    if kwargs == space.factory_kwargs:
        return space
    rebuilt = create_space(space.name, **kwargs)
    same = [(d.path, d.options) for d in rebuilt.decisions()] == [(d.path, d.options) for d in space.decisions()]
    return rebuilt if same else space


def _supernet(relaxation: Relaxation, max_w: bool) -> Any:
    """The relaxed space's network (:class:`~spaces.Network`, the DSL's op builders) whose mixed
    ops' sums are weighted by ``softmax(alpha)`` (or Max-W); ``alpha`` has one row per mixed op,
    padded to the longest (the padding is masked out)."""
    import torch
    import torch.nn as nn

    from spaces._builder import Network

    class Supernet(Network):
        mask: torch.Tensor  # True where alpha's row has a candidate (a buffer)

        def __init__(self) -> None:
            super().__init__(relaxation.program, relaxation.relaxed.input_shape)
            self.mixed = relaxation.mixed_sources()
            sizes = [len(u.candidates) for u in relaxation.units]
            mask = torch.zeros(len(sizes), max(sizes), dtype=torch.bool)
            for u, n in enumerate(sizes):
                mask[u, :n] = True
            self.register_buffer("mask", mask)
            self.sizes = sizes
            self.max_w = max_w
            self._w: torch.Tensor | None = None
            self.alpha = nn.Parameter(1e-3 * torch.randn(len(sizes), max(sizes)))

        def op_weights(self) -> torch.Tensor:
            w = torch.softmax(self.alpha.masked_fill(~self.mask, float("-inf")), dim=-1)
            if self.max_w:
                w = 1.0 - w.max(dim=-1, keepdim=True).values + w
            return w

        def probabilities(self) -> list[list[float]]:
            """softmax(alpha) per mixed op, over its own candidates."""
            w = torch.softmax(self.alpha.detach().masked_fill(~self.mask, float("-inf")), dim=-1).cpu()
            return [w[u, :n].tolist() for u, n in enumerate(self.sizes)]

        def weight_params(self) -> list[nn.Parameter]:
            return [p for n, p in self.named_parameters() if n != "alpha"]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self._w = self.op_weights()
            try:
                return super().forward(x)
            finally:
                self._w = None

        def merge(self, wire: Any, tensors: list[torch.Tensor]) -> torch.Tensor:
            u = self.mixed.get(wire.sources)
            if u is None or self._w is None:
                return super().merge(wire, tensors)
            w = self._w[u]
            out = w[0] * tensors[0]
            for i in range(1, len(tensors)):
                out = out + w[i] * tensors[i]
            return out

    return Supernet()


def _build_supernet(
    cfg: DartsConfig, in_chans: int, num_classes: int, resolution: int = 28, space: Space | None = None
) -> Any:
    """The DARTS supernet of ``space`` (default: ``nb201``) for inputs of ``in_chans`` x
    ``resolution``² and ``num_classes`` classes."""
    from spaces import create_space

    space = space if space is not None else create_space("nb201")
    net_space = search_space(space, cfg, in_chans, resolution, num_classes)
    return _supernet(relax_space(net_space, cfg.fixed), cfg.max_w)


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


def run_darts(config: DartsConfig | None = None, *, space: Space | None = None, **overrides: Any) -> DartsResult:
    """Run one DARTS search on real data (Fashion-MNIST by default) over ``space`` (default: the
    ``nb201`` cell space); returns the derived archs, archs of ``space``."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from spaces import create_space

    cfg = config or DartsConfig()
    if overrides:
        cfg = DartsConfig(**{**asdict(cfg), **overrides})
    cfg.check()
    from nas.search.data import load_arrays

    space = space if space is not None else create_space("nb201")
    start = time.perf_counter()
    # a registered space is rebuilt at the data's shape, any other takes the data at its own
    native = search_space(space, cfg, space.in_chans, space.resolution, space.num_classes) is not space
    shape: dict[str, Any] = {} if native else {"resolution": space.resolution, "in_chans": space.in_chans}
    x, y, _, _ = load_arrays(cfg.dataset, cfg.train_size, 1, seed=cfg.seed, **shape)
    classes = int(y.max()) + 1
    net_space = search_space(space, cfg, int(x.shape[1]), int(x.shape[2]), classes)
    if net_space is space and classes > space.num_classes:
        raise ConfigError(f"{cfg.dataset} has {classes} classes; space {space.name!r} classifies {space.num_classes}")
    relaxation = relax_space(net_space, cfg.fixed)
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        torch.manual_seed(cfg.seed)
        half = len(x) // 2
        dev = torch.device(cfg.device)
        xw, yw = torch.from_numpy(x[:half]).to(dev), torch.from_numpy(y[:half]).to(dev)
        xa, ya = torch.from_numpy(x[half:]).to(dev), torch.from_numpy(y[half:]).to(dev)
        model = _supernet(relaxation, cfg.max_w).to(dev)
        skip = [[c.kind == "skip" for c in u.candidates] for u in relaxation.units]
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
            lr = cfg.w_lr
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
            probs = model.probabilities()
            ent = float(np.mean([-sum(p * math.log(p + 1e-12) for p in row) for row in probs]))
            entry = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": loss_sum / max(seen, 1),
                "train_acc": 100.0 * correct / max(seen, 1),
                "val_acc": 100.0 * vc / len(xa),
                "alpha_entropy": ent,
            }
            with_skip = [sum(p for p, k in zip(row, ks) if k) for row, ks in zip(probs, skip) if any(ks)]
            if with_skip:  # the weight of identity ops, which DARTS tends to over-select
                entry["skip_weight"] = float(np.mean(with_skip))
            history.append(entry)
        weights = model.probabilities()
    finally:
        torch.set_num_threads(old_threads)
    a_darts = space.validate(relaxation.derive(weights, "darts", cfg.keep))
    a_argmax = space.validate(relaxation.derive(weights, "argmax", cfg.keep))
    return DartsResult(
        a_darts if cfg.derive == "darts" else a_argmax,
        a_darts,
        a_argmax,
        weights,
        history,
        cfg,
        time.perf_counter() - start,
        space=space.name,
        units=[u.name for u in relaxation.units],
        candidates=[[c.label for c in u.candidates] for u in relaxation.units],
        fixed=relaxation.fixed,
    )


@register_searcher("darts")
class DartsSearcher(Searcher):
    """DARTS as a searcher: the first ask runs the search and returns the derived arch; later asks
    raise :class:`~nas.search.SearchExhausted`. Keyword arguments are :class:`DartsConfig` fields
    (``seed`` included); the space must have cells with choices (see :mod:`nas.search.darts_relax`),
    which is checked here, before any training."""

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
        # refuses a space DARTS cannot relax, in one line, before any data or training
        relax_space(
            search_space(space, self.config, space.in_chans, space.resolution, space.num_classes), self.config.fixed
        )
        self.result: DartsResult | None = None

    def ask(self) -> Arch:
        if self.result is not None:
            raise SearchExhausted("DARTS derives one arch per search")
        self.result = run_darts(self.config, space=self.space)
        return self.space.validate(self.result.arch)

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), **asdict(self.config)}
        if self.result is not None:
            result = self.result.to_dict()
            result.pop("config", None)
            out["result"] = result
        return out
