from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from quant import ORT_CPU, TENSORRT, ActFakeQuant, QuantConv2d, QuantLinear, WeightFakeQuant


def test_uninitialized_quantizer_passes_through_in_eval_and_initializes_in_training() -> None:
    q = ActFakeQuant(ORT_CPU)
    x = torch.randn(8, 4) * 2
    q.eval()
    assert torch.equal(q(x), x) and not bool(q.initialized)
    q.train()
    y = q(x)
    assert bool(q.initialized) and not torch.equal(y, x)
    assert torch.allclose(y, x, atol=float(q.effective_scale().detach()))


def test_nonnegative_quantizer_pins_zero_point_to_lowest_code() -> None:
    for scheme, expected in ((ORT_CPU, 0), (TENSORRT, 0)):
        q = ActFakeQuant(scheme, nonnegative=True)
        q.set_range(-3.0, 5.0)  # a negative min (noise) is ignored
        assert q.qparams()[1] == expected
        assert not q.learn_zero_point


def test_relu6_cap_keeps_quantized_range_inside_six() -> None:
    q = ActFakeQuant(ORT_CPU, nonnegative=True, max_value=6.0)
    with torch.no_grad():
        q.set_range(0.0, 6.0)
        q.scale.fill_(1.0)  # as if LSQ pushed it far beyond
    s, z = q.qparams()
    assert s * (255 - z) <= 6.0 + 1e-6


def test_lsq_plus_learns_scale_and_zero_point() -> None:
    q = ActFakeQuant(ORT_CPU)
    assert q.learn_zero_point
    q.set_range(-1.0, 1.0)
    q.train()
    x = torch.randn(16, 8) * 3
    (q(x) - x).pow(2).sum().backward()
    assert q.scale.grad is not None and q.zero_point.grad is not None and float(q.zero_point.grad) != 0.0


def test_lsq_on_tensorrt_keeps_zero_point_zero() -> None:
    q = ActFakeQuant(TENSORRT)
    q.set_range(-1.0, 3.0)
    assert q.qparams()[1] == 0 and not q.learn_zero_point
    assert q.qparams()[0] == pytest.approx(3.0 / 127)


def test_training_and_eval_paths_agree() -> None:
    q = ActFakeQuant(ORT_CPU)
    q.set_range(-0.7, 2.3)
    x = torch.randn(100) * 2
    q.train()
    y_train = q(x.clone().requires_grad_())
    with torch.no_grad():
        y_eval = q(x)
    assert torch.allclose(y_train.detach(), y_eval, atol=1e-5)


def test_weight_quantizer_uses_the_first_channels_for_a_sliced_weight() -> None:
    wq = WeightFakeQuant(8, ORT_CPU)
    w = torch.randn(8, 4, 3, 3)
    wq.init_from(w)
    full = wq(w)
    part = wq(w[:3])
    assert torch.allclose(part, full[:3])
    codes = part / wq.scale[:3].detach().view(-1, 1, 1, 1)
    assert torch.allclose(codes, codes.round(), atol=1e-4) and codes.abs().max() <= 127


def test_weight_quantizer_initializes_lazily_from_the_weight() -> None:
    wq = WeightFakeQuant(4, ORT_CPU)
    wq(torch.randn(4, 2))
    assert bool(wq.initialized)


def test_quant_layers_share_parameters_with_the_float_layers() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, groups=1)
    qc = QuantConv2d.from_float(conv, ORT_CPU)
    assert qc.weight is conv.weight and qc.bias is conv.bias and qc.padding == (1, 1)
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(qc(x), conv(x), atol=0.05)
    lin = nn.Linear(5, 3)
    ql = QuantLinear.from_float(lin, ORT_CPU)
    assert ql.weight is lin.weight
    assert torch.allclose(ql(torch.ones(1, 5)), lin(torch.ones(1, 5)), atol=0.05)


def test_weight_and_scale_gradients_in_training() -> None:
    qc = QuantConv2d.from_float(nn.Conv2d(2, 4, 3), ORT_CPU)
    qc.train()
    qc(torch.randn(2, 2, 6, 6)).sum().backward()
    assert qc.weight.grad is not None and qc.weight_quant.scale.grad is not None


def test_initialized_state_survives_a_state_dict_round_trip() -> None:
    q = ActFakeQuant(ORT_CPU)
    q.set_range(-1.0, 2.0)
    fresh = ActFakeQuant(ORT_CPU)
    assert not fresh.is_initialized
    fresh.load_state_dict(q.state_dict())
    assert fresh.is_initialized and fresh.qparams() == q.qparams()
    wq, wfresh = WeightFakeQuant(3, ORT_CPU), WeightFakeQuant(3, ORT_CPU)
    wq.init_from(torch.randn(3, 2))
    wfresh.load_state_dict(wq.state_dict())
    assert wfresh.is_initialized and torch.equal(wfresh.scale, wq.scale)


def test_select_extracts_the_step_sizes_of_a_subnet() -> None:
    wq = WeightFakeQuant(6, ORT_CPU)
    w = torch.randn(6, 3)
    wq.init_from(w)
    first = wq.select(4)
    assert first.is_initialized and torch.equal(first(w[:4]), wq(w[:4]))
    picked = wq.select(torch.tensor([5, 0]))
    assert torch.equal(picked.scale, wq.scale[[5, 0]]) and picked.scale is not wq.scale


def _init_shard(rank: int, world: int, init_file: str, batch: torch.Tensor, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        q = ActFakeQuant(ORT_CPU).train()
        q(batch.chunk(world)[rank])  # this process's shard of the global batch
        torch.save(q.qparams(), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_lazy_initialisation_under_data_parallel_takes_the_global_batch_range(tmp_path) -> None:  # noqa: ANN001
    """Two gloo processes, each with half of a batch whose halves have different ranges: both
    initialise to the quantizer one process gets from the whole batch."""
    import torch.multiprocessing as mp

    batch = torch.cat([torch.rand(4, 3, 5, 5) * 2.0, torch.rand(4, 3, 5, 5) * 6.0 - 1.0])
    single = ActFakeQuant(ORT_CPU).train()
    single(batch)
    out = str(tmp_path / "qparams")
    mp.spawn(_init_shard, args=(2, str(tmp_path / "init"), batch, out), nprocs=2, join=True)
    shards = [torch.load(f"{out}.{r}") for r in range(2)]
    assert shards[0] == shards[1] == single.qparams()
    local = ActFakeQuant(ORT_CPU).train()
    local(batch.chunk(2)[0])
    assert local.qparams() != single.qparams()  # the test would notice a per-shard range
