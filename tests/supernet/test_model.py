"""The elastic supernet: slices, crops, equivalence with the extracted standalone subnet."""

from __future__ import annotations

import random

import pytest
import torch

from hwnas.errors import InvalidArchError
from supernet.model import Supernet
from tests.helpers import tiny_net, tiny_space

pytestmark = pytest.mark.usefixtures("one_thread")


def _perturb(net: Supernet) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for k in net.keys():
            t = net.tensor(k)
            if k.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif k.endswith("running_mean") or k.endswith(".bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif k.endswith("bn.weight"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif "ktrans" in k:
                t.add_(torch.randn(t.shape, generator=g) * 0.05)


@pytest.mark.parametrize("name", ["mobilenet", "spaceevo", "resnet"])
def test_supernet_equals_extracted_subnet(name):
    net = tiny_net(name)
    _perturb(net)
    net.eval()
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    archs = [net.largest(), net.smallest()] + [net.space.sample(random.Random(i)) for i in range(2)]
    for arch in archs:
        sub = net.subnet(arch)
        assert type(sub).__name__ == "Network" and not sub.training
        with torch.no_grad():
            assert torch.equal(net(x, arch), sub(x)), arch.id
        ref = net.space.build(arch)  # the same standalone module
        assert [n for n, _ in ref.state_dict().items()] == [n for n, _ in sub.state_dict().items()]


def test_width_and_expand_are_leading_slices_and_kernels_centre_crops():
    net = tiny_net("mobilenet", kernel_transform=False)
    small = net.smallest()
    sub = net.subnet(small)
    blocks = net.blocks(small)
    i = next(j for j, b in enumerate(blocks) if b.path == "stage2.b0")
    dw = dict(sub.named_parameters())[f"blocks.{i}.dw.conv.weight"]
    full = net.tensor("stage2.b0/dw.conv.weight")
    assert full.shape[-1] == 5 and dw.shape[-1] == 3
    assert torch.equal(dw, full[: dw.shape[0], :, 1:4, 1:4])
    pw = dict(sub.named_parameters())[f"blocks.{i}.project.conv.weight"]
    assert torch.equal(pw, net.tensor("stage2.b0/project.conv.weight")[: pw.shape[0], : pw.shape[1]])


def test_kernel_transform_starts_as_identity_and_is_learned():
    net = tiny_net("mobilenet")
    key = "stage2.b0/dw.conv.weight.ktrans5to3"
    assert torch.equal(net.tensor(key), torch.eye(9))
    net.train()
    arch = net.smallest()
    net(torch.randn(4, 1, 28, 28), arch).sum().backward()
    assert net.tensor(key).grad is not None and net.tensor(key).grad.abs().sum() > 0


def test_elastic_depth_uses_leading_blocks():
    net = tiny_net("mobilenet")
    paths = [b.path for b in net.blocks(net.smallest())]
    assert "stage2.b0" in paths and "stage2.b1" not in paths
    assert "stage2.b1" in [b.path for b in net.blocks(net.largest())]


def test_training_updates_only_what_a_subnet_uses():
    net = tiny_net("mobilenet")
    net.train()
    small = net.smallest()
    net(torch.randn(8, 1, 28, 28), small).logsumexp(1).mean().backward()
    g = net.tensor("stage2.b0/project.conv.weight").grad
    used = net.subnet(small).state_dict()
    i = next(j for j, b in enumerate(net.blocks(small)) if b.path == "stage2.b0")
    o, c = used[f"blocks.{i}.project.conv.weight"].shape[:2]
    assert g[:o, :c].abs().sum() > 0 and g[o:].abs().sum() == 0 and g[:, c:].abs().sum() == 0
    assert net.tensor("stage2.b1/dw.conv.weight").grad is None  # block not in the smallest subnet


def test_arch_of_another_space_is_a_one_line_error():
    net = tiny_net("mobilenet")
    other = tiny_space("resnet").sample(0)
    with pytest.raises(InvalidArchError) as info:
        net.subnet(other)
    assert "\n" not in str(info.value)


def test_storage_roundtrip_through_load_storage():
    a = Supernet(tiny_space("mobilenet"), seed=1, layout_samples=4)
    b = Supernet(tiny_space("mobilenet"), seed=2, layout_samples=4)
    b.load_storage(a.storage_state(), a.key_info())
    x = torch.randn(2, 1, 28, 28)
    a.eval()
    b.eval()
    assert torch.equal(a(x), b(x))


def test_reorder_channels_keeps_the_largest_and_sorts_importance():
    net = tiny_net("spaceevo")
    _perturb(net)
    net.eval()
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    big = net.largest()
    rng = random.Random(4)
    small = next(
        a
        for a in (net.space.sample(rng) for _ in range(50))
        if any(isinstance(v, float) and v < 4.0 for k, v in a.items() if k.endswith("expand"))
    )
    opt = torch.optim.SGD(list(net.parameters()), lr=0.1, momentum=0.9)
    net.train()
    net(x, big).sum().backward()
    opt.step()  # momentum buffers exist
    net.eval()
    with torch.no_grad():
        y_big, y_small = net(x, big), net(x, small)
    assert net.reorder_channels(opt) > 0
    with torch.no_grad():
        assert torch.allclose(net(x, big), y_big, atol=1e-5)
        assert not torch.allclose(net(x, small), y_small, atol=1e-5)
    path = next(p for p in net.layout.paths if net.layout.ops[p] == "fused_mbconv")
    w = net.tensor(f"{path}/project.conv.weight")
    imp = w.abs().sum(dim=(0, 2, 3))
    assert torch.all(imp[:-1] >= imp[1:])


def test_channels_last_reaches_every_conv_of_a_one_channel_input():
    # A (N, 1, H, W) image is NCHW and NHWC at once, so converting only the input left every
    # later tensor NCHW (and CPU training 1.6x slower); the supernet converts at every block.
    net = tiny_net("mobilenet")
    net.channels_last = True
    seen: list[bool] = []

    def hook(module, inputs, output):  # noqa: ARG001
        x = inputs[0]
        if x.shape[1] > 1:
            seen.append(x.is_contiguous(memory_format=torch.channels_last))

    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    net(x, net.largest())  # builds the block programs
    handles = [
        m.register_forward_hook(hook)
        for plan in net._plans.values()
        for m in plan.module.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    try:
        out = net(x, net.largest())
    finally:
        for h in handles:
            h.remove()
    assert seen and all(seen)
    net.channels_last = False
    assert torch.allclose(net(x, net.largest()), out, rtol=1e-4, atol=1e-5)
