from __future__ import annotations

import pytest


@pytest.fixture
def settle_bn():
    """Give a freshly initialised network realistic BatchNorm statistics.

    Untrained networks in eval mode use running stats of mean 0 / var 1, so activations can
    grow to 1e5 through deep cells and FP32 rounding dominates any comparison. A couple of
    forward passes in train mode with a cumulative average fix that.
    """
    import torch

    def settle(model: torch.nn.Module, input_shape, batches: int = 2) -> torch.nn.Module:
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for _ in range(batches):
                model(torch.randn(8, *input_shape, generator=gen))
        return model.eval()

    return settle
