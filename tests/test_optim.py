"""kdviz.optim against torch.optim as the independent reference: the same weights, bit for bit, after
many steps, for each optimiser and schedule the engine offers; and no torch._dynamo import (its reason to exist)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from kdviz import optim
from kdviz.engine import TrainConfig, make_lr_schedule, make_optimizer

STEPS = 40


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))


def _train(model: nn.Module, opt, sched, steps: int = STEPS) -> list[float]:
    """A few steps on fixed random data; returns the lr used at each step (and β₁ / momentum)."""
    gen = torch.Generator().manual_seed(1)
    seen = []
    for _ in range(steps):
        x, y = torch.randn(16, 20, generator=gen), torch.randint(0, 5, (16,), generator=gen)
        g = opt.param_groups[0]
        seen.append((g["lr"], g["betas"][0] if "betas" in g else g["momentum"]))
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if sched is not None:
            sched.step()
    return seen


def _reference(name: str, params, lr: float, wd: float, momentum: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd, nesterov=momentum > 0, fused=True)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=wd, fused=True)


def _reference_schedule(schedule: str, opt):
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=STEPS, pct_start=0.25)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)
    return None


@pytest.mark.parametrize("schedule", ["constant", "onecycle", "cosine"])
@pytest.mark.parametrize("name,wd,momentum", [("adam", 0.0, 0.0), ("adam", 1e-3, 0.0), ("adamw", 0.05, 0.0),
                                              ("sgd", 1e-4, 0.9), ("sgd", 0.0, 0.0)])
def test_same_weights_as_torch_optim(name, wd, momentum, schedule):
    cfg = TrainConfig(optimizer=name, lr=0.01, weight_decay=wd, momentum=momentum, schedule=schedule)
    ours, ref = _net(), _net()
    opt = make_optimizer(ours.parameters(), cfg)
    assert isinstance(opt, optim.FusedOptimizer)
    seen = _train(ours, opt, make_lr_schedule(opt, cfg, STEPS))
    ref_opt = _reference(name, list(ref.parameters()), 0.01, wd, momentum)
    ref_seen = _train(ref, ref_opt, _reference_schedule(schedule, ref_opt))
    assert seen == ref_seen  # the same lr (and β₁ or momentum) at every step, to the last bit
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b), (name, schedule, (a - b).abs().max())
    assert any(not torch.equal(a, b) for a, b in zip(ours.parameters(), _net().parameters()))  # it did train


def test_schedules_drive_a_torch_optimiser_like_torch_schedulers():
    """Where no fused kernel exists the engine falls back to torch.optim; the schedules work on it too."""
    for schedule in ("onecycle", "cosine"):
        a, b = torch.optim.Adam(_net().parameters(), lr=0.02), torch.optim.Adam(_net().parameters(), lr=0.02)
        cfg = TrainConfig(lr=0.02, schedule=schedule)
        assert _train(_net(), a, make_lr_schedule(a, cfg, STEPS)) == _train(_net(), b, _reference_schedule(schedule, b))


def test_only_parameters_with_gradients_move():
    model = _net()
    frozen = model[0].weight.detach().clone()
    opt = optim.Adam([p for p in model.parameters()], lr=0.1)
    model[0].weight.requires_grad_(False)
    nn.functional.cross_entropy(model(torch.randn(4, 20)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    assert torch.equal(model[0].weight, frozen) and model[0].weight not in opt.state
    opt.zero_grad(set_to_none=False)
    assert model[2].weight.grad is not None and not model[2].weight.grad.any()


def test_one_cycle_survives_a_first_phase_of_zero_length():
    """torch's OneCycleLR divides by zero when pct_start·steps = 1 (here 4 steps); this one goes on."""
    model = _net()
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.OneCycle(opt, max_lr=0.01, total_steps=4, pct_start=0.25)
    lrs = [lr for lr, _ in _train(model, opt, sched, steps=4)]
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.01 / 25 / 1e4) and lrs == sorted(lrs, reverse=True)


def test_nesterov_without_momentum_is_refused():
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD(_net().parameters(), lr=0.1, nesterov=True)


def test_a_training_run_does_not_import_torch_dynamo():
    """The reason kdviz.optim exists: torch.optim's first optimiser imports torch._dynamo (152 MiB, 2 s per job)."""
    code = ("import sys, torch\n"
            "from kdviz.data import synthetic_bundle\n"
            "from kdviz.engine import TrainConfig, train\n"
            "from kdviz.models import ModelConfig, build_model\n"
            "train_set = synthetic_bundle(256, 64).train\n"
            "for sched in ('constant', 'onecycle', 'cosine'):\n"
            "    for opt in ('adam', 'adamw', 'sgd'):\n"
            "        cfg = TrainConfig(epochs=1, batch_size=64, optimizer=opt, schedule=sched, momentum=0.9)\n"
            "        records = list(train(build_model(ModelConfig(hidden=(16,))), train_set, cfg))\n"
            "        assert records[-1].step == 4, records[-1]\n"
            "print('dynamo' if 'torch._dynamo' in sys.modules else 'clean')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "clean"
