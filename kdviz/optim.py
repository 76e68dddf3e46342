"""Adam, AdamW and SGD on PyTorch's fused kernels, and the one-cycle and cosine learning-rate schedules,
without ``torch.optim.Optimizer``.

Why: building the first ``torch.optim`` optimiser in a process imports ``torch._dynamo`` (its
``add_param_group``, ``zero_grad`` and ``step`` are wrapped for the compiler). Measured on this 2-core
CPU with torch 2.14: +152 MiB of proportional set size and 2.0 s, in every worker process, for a job
that never compiles anything. These classes call the same fused ops the way ``torch.optim``'s
``fused=True`` path does (``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``: one kernel per
parameter list), and the schedules repeat ``OneCycleLR`` / ``CosineAnnealingLR``'s arithmetic, so the
weights come out bit for bit the same; ``tests/test_optim.py`` checks that against ``torch.optim``.

The interface is the part of ``torch.optim`` kdviz uses: ``param_groups`` (dicts with ``"lr"`` etc.,
which the schedules set), ``zero_grad(set_to_none=True)`` and ``step()``. ``build(name, ...)`` and
``schedule(name, ...)`` pick them by the names ``TrainConfig`` uses (``kdviz.engine.make_optimizer``).
"""
from __future__ import annotations

import math
from collections import defaultdict

import torch

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


class FusedOptimizer:
    """One parameter group; ``step()`` updates every parameter that has a gradient."""

    def __init__(self, params, **defaults) -> None:
        self.defaults = defaults
        self.param_groups = [dict(defaults, params=list(params))]
        self.state: dict[torch.Tensor, dict] = defaultdict(dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            by_kind: dict[tuple, list[torch.Tensor]] = defaultdict(list)
            for p in group["params"]:
                if p.grad is not None:
                    by_kind[(p.device, p.dtype)].append(p)  # a fused kernel takes one device and dtype
            for params in by_kind.values():
                self._update(group, params)

    def _update(self, group: dict, params: list[torch.Tensor]) -> None:
        raise NotImplementedError


class Adam(FusedOptimizer):
    """``torch.optim.Adam(fused=True)`` (L2 weight decay added to the gradient); ``decoupled=True`` is AdamW."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0, decoupled: bool = False) -> None:
        super().__init__(params, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=weight_decay)
        self.decoupled = decoupled
        self._counters: dict[tuple[int, ...], torch.Tensor] = {}  # parameters first stepped together → their step counters

    def _update(self, group: dict, params: list[torch.Tensor]) -> None:
        fresh = [p for p in params if not self.state[p]]
        if fresh:  # as torch.optim.Adam's first step: a float32 step counter per parameter on the device, zero moments
            counters = torch.zeros(len(fresh), dtype=torch.float32, device=fresh[0].device)
            self._counters[tuple(map(id, fresh))] = counters
            for p, step in zip(fresh, counters):  # each parameter's counter is a view of one tensor
                self.state[p].update(step=step, exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                                     exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
        states = [self.state[p] for p in params]
        steps = [s["step"] for s in states]
        together = self._counters.get(tuple(map(id, params)))
        if together is not None:
            together.add_(1)  # one op instead of _foreach_add_ over the list: ~40 µs a step on this CPU
        else:
            torch._foreach_add_(steps, 1)
        fused = torch._fused_adamw_ if self.decoupled else torch._fused_adam_
        beta1, beta2 = group["betas"]
        fused(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
              [], steps, amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
              eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)


class SGD(FusedOptimizer):
    """``torch.optim.SGD(fused=True)``: momentum (Nesterov when asked), L2 weight decay, no dampening."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum requires a momentum > 0")
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def _update(self, group: dict, params: list[torch.Tensor]) -> None:
        momentum = group["momentum"]
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        first = momentum != 0 and all(b is None for b in buffers)
        if first:  # the kernel fills them on its first step
            buffers = [torch.empty_like(p.grad) for p in params]
        torch._fused_sgd_(params, [p.grad for p in params], [] if momentum == 0 else buffers,
                          weight_decay=group["weight_decay"], momentum=momentum, lr=group["lr"], dampening=0.0,
                          nesterov=group["nesterov"], maximize=False, is_first_step=first, grad_scale=None, found_inf=None)
        if momentum != 0:
            for p, b in zip(params, buffers):
                self.state[p]["momentum_buffer"] = b


def fusable(params: list[torch.Tensor]) -> bool:
    """Fused kernels exist for float parameters on the CPU and CUDA."""
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float16, torch.bfloat16)
                                for p in params)


def build(name: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.0):
    """Optimiser ``name`` ("adam" | "adamw" | "sgd", Nesterov when ``momentum`` > 0) on the fused kernels;
    ``torch.optim``'s where there is none for the parameters (another device or dtype)."""
    params, nesterov = list(params), momentum > 0
    if fusable(params):
        if name == "sgd":
            return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        return Adam(params, lr=lr, weight_decay=weight_decay, decoupled=name == "adamw")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    return (torch.optim.AdamW if name == "adamw" else torch.optim.Adam)(params, lr=lr, weight_decay=weight_decay)


# ----------------------------------------------------------------------------- schedules (stepped once per batch)
def schedule(name: str, opt, lr: float, total_steps: int):
    """Schedule ``name`` ("constant" → None, "onecycle", "cosine") over ``total_steps``; it works on either kind of optimiser."""
    if name == "onecycle":
        return OneCycle(opt, max_lr=lr, total_steps=total_steps, pct_start=0.25)
    if name == "cosine":
        return Cosine(opt, t_max=total_steps)
    return None


class OneCycle:
    """``torch.optim.lr_scheduler.OneCycleLR`` with its defaults (cosine annealing, momentum cycled between
    0.95 and 0.85: Adam's β₁ or SGD's momentum), two phases; ``step()`` after each optimiser step."""

    DIV, FINAL_DIV, BASE_M, MAX_M = 25.0, 1e4, 0.85, 0.95

    def __init__(self, opt, max_lr: float, total_steps: int, pct_start: float = 0.25) -> None:
        self.opt, self.total_steps, self.t = opt, total_steps, 0
        first = float(pct_start * total_steps) - 1
        self.phases = [(first, "initial_lr", "max_lr", self.MAX_M, self.BASE_M),
                       (total_steps - 1, "max_lr", "min_lr", self.BASE_M, self.MAX_M)]
        for g in opt.param_groups:
            g.update(initial_lr=max_lr / self.DIV, max_lr=max_lr)
            g["min_lr"] = g["initial_lr"] / self.FINAL_DIV
        self._apply()

    @staticmethod
    def _cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def _apply(self) -> None:
        start = 0.0
        for i, (end, lr0, lr1, m0, m1) in enumerate(self.phases):
            if self.t <= end or i == len(self.phases) - 1:
                pct = (self.t - start) / (end - start) if end > start else 1.0  # torch divides by zero here
                break
            start = end
        for g in self.opt.param_groups:
            g["lr"] = self._cos(g[lr0], g[lr1], pct)
            m = self._cos(m0, m1, pct)
            if "betas" in g:
                g["betas"] = (m, *g["betas"][1:])
            else:
                g["momentum"] = m

    def step(self) -> None:
        self.t = min(self.t + 1, self.total_steps)
        self._apply()


class Cosine:
    """``torch.optim.lr_scheduler.CosineAnnealingLR`` (its step-to-step recurrence, so the same floats)."""

    def __init__(self, opt, t_max: int, eta_min: float = 0.0) -> None:
        self.opt, self.t_max, self.eta_min, self.t = opt, t_max, eta_min, 0
        self.base = [g["lr"] for g in opt.param_groups]

    def step(self) -> None:
        self.t += 1
        t, T, lo = self.t, self.t_max, self.eta_min
        for g, base in zip(self.opt.param_groups, self.base):
            if (t - 1 - T) % (2 * T) == 0:
                g["lr"] = g["lr"] + (base - lo) * (1 - math.cos(math.pi / T)) / 2
            else:
                g["lr"] = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (g["lr"] - lo) + lo
