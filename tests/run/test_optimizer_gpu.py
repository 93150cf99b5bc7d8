"""The run's optimizer on a CUDA GPU: torch's fused implementation bit for bit there too, the direct fused
Adam kernel included (skipped without CUDA; `python -m pytest -m gpu tests/run/test_optimizer_gpu.py`)."""

import pytest
import torch

from mosaic.run.optimizer import RunOptimizer, make_optimizer
from tests.fakes import optimizer_experiment

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")]


class Heads(torch.nn.Module):
    """An MLP with a second head reached on one step in three (torch skips it on the others)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))
        self.head = torch.nn.Linear(8, 1)
        self.extra = torch.nn.Linear(8, 1)

    def forward(self, x, step):
        h = torch.tanh(self.body(x))
        return self.head(h) + self.extra(h) if step % 3 == 0 else self.head(h)


def trained(optimizer_for, steps=200):
    model = Heads().cuda()
    optimizer = optimizer_for(list(model.parameters()))
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        x = torch.rand(16, 2, generator=generator).cuda()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x, step), x.sum(dim=1, keepdim=True))
        loss.backward()
        optimizer.step()
    return torch.cat([param.detach().reshape(-1) for param in model.parameters()]), optimizer


def torchs(name, params):
    """torch.optim's optimizer as a user would make it on the GPU: fused where torch has a CUDA kernel
    (Adagrad's fused kernel is the CPU's alone: torch takes fused=True, then its first step raises)."""
    fused = {"fused": True} if name != "Adagrad" else {}
    return getattr(torch.optim, name)(params, lr=1e-2, **fused)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "Adagrad"])
def test_the_update_on_the_gpu_is_torchs_fused_implementation_bit_for_bit(name):
    ours, _ = trained(lambda params: make_optimizer(optimizer_experiment(name), params))
    theirs, _ = trained(lambda params: torchs(name, params))
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, torch.cat([p.detach().reshape(-1) for p in Heads().cuda().parameters()]))


@pytest.mark.parametrize("cls, options", [
    (torch.optim.Adam, {}),
    (torch.optim.AdamW, {"weight_decay": 0.3, "amsgrad": True, "maximize": True, "betas": (0.8, 0.9)}),
])
def test_the_direct_fused_kernel_on_the_gpu_is_torchs_step_bit_for_bit(cls, options):
    class Always(Heads):
        def forward(self, x):
            return super().forward(x, 0)  # every parameter has a gradient: the direct kernel runs

    def run(direct):
        model = Always().cuda()
        optimizer = RunOptimizer(lambda tensors: cls(tensors, lr=1e-2, fused=True, **options),
                                 list(model.parameters()))
        if not direct:
            optimizer.fused_step = False
        generator = torch.Generator().manual_seed(1)
        for _ in range(100):
            x = torch.rand(16, 2, generator=generator).cuda()
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(model(x), x.sum(dim=1, keepdim=True)).backward()
            optimizer.step()
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), optimizer

    ours, direct = run(True)
    theirs, plain = run(False)
    assert callable(direct.fused_step)
    assert torch.equal(ours, theirs)
    for key in ("step", "exp_avg", "exp_avg_sq"):
        assert torch.equal(direct.state_dict()["state"][0][key], plain.state_dict()["state"][0][key]), key
