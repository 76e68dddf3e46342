"""Distillation throughput: kdviz's engine vs the usual tutorial loop, and vs a bare loop.

Run: ``KDVIZ_DATA_DIR=/path/to/data python bench/throughput.py [--threads 1] [--rounds 15]``

The end-to-end row: 3 epochs from a fresh student *including* the teacher-logit pass (what a user
waits for), interleaved with the tutorial loop in rounds of its own after the steady-state rounds, beside
its ceiling: the same work with no engine (the same float32 teacher pass, then bare student steps). In those
rounds kdviz and bare swap places each round, so neither always runs right after the tutorial's chunk
(that place tends to cost a 3-epoch run a few %).

Contenders (teacher MLP 784-1200-1200-10, student MLP 784-128-10, batch 64, Adam, KD with
T=4, alpha=0.9), interleaved chunk by chunk in one run:
- baseline: ``torchvision.datasets.MNIST`` + ToTensor + Normalize, ``DataLoader(batch_size=64,
  shuffle=True)``, the teacher's forward under no_grad every batch, KL(batchmean)·T² + CE, Adam;
- baseline+aug: the same with ``RandomCrop(28, padding=2)`` (shift ≤ 2 px);
- kdviz cached: ``kdviz.engine.train`` with the teacher's logits cached (built once, timed apart);
- kdviz aug: ``train(..., jitter=2)``: the teacher must run every batch (shifted inputs);
- bare: resident tensors, the student's forward (same KD loss, written inline) / backward and a
  fused Adam step (kdviz.optim's, as the engine's) — nothing else: the compute limit of the student step on these cores;
- matmul: 2048×2048 float32 matmuls, the cores' practical GFLOP/s.
The teacher is untrained (throughput does not depend on its weights).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from _util import Contender, interleave, machine_line, mnist_or_exit, paired_ratio, setup_threads, spread, verdict

from kdviz import optim
from kdviz.data import MNIST_MEAN, MNIST_STD, data_root
from kdviz.engine import TrainConfig, make_model, train
from kdviz.devices import bf16_is_fast
from kdviz.evaluation import teacher_logits_cache
from kdviz.methods.objective import DistillConfig
from kdviz.models import ModelConfig

TEACHER, STUDENT = ModelConfig(hidden=(1200, 1200)), ModelConfig(hidden=(128,))
T, ALPHA, BATCH, LR, SEED = 4.0, 0.9, 64, 1e-3, 0


# ----------------------------------------------------------------------------- baseline (tutorial loop)
def as_sequential(model: nn.Module) -> nn.Sequential:
    """kdviz's MLP as the plain nn.Sequential a tutorial writes, with the same weights."""
    linears = [*model.layers, model.head]
    seq = nn.Sequential(nn.Flatten())
    for i, lin in enumerate(linears):
        seq.append(nn.Linear(lin.in_features, lin.out_features))
        seq[-1].load_state_dict(lin.state_dict())
        if i < len(linears) - 1:
            seq.append(nn.ReLU())
    return seq


def tutorial_chunks(teacher: nn.Module, steps: int, augment: bool):
    """The KD tutorial loop, ``steps`` batches per ``next()``."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(SEED)
    aug = [transforms.RandomCrop(28, padding=2)] if augment else []
    tf = transforms.Compose([*aug, transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    loader = DataLoader(datasets.MNIST(str(data_root()), train=True, download=False, transform=tf), batch_size=BATCH, shuffle=True)
    t_net, s_net = as_sequential(teacher).eval(), as_sequential(make_model(STUDENT, SEED))
    opt = torch.optim.Adam(s_net.parameters(), lr=LR)
    kl = nn.KLDivLoss(reduction="batchmean")
    batches = _forever(loader)
    while True:
        for _ in range(steps):
            x, y = next(batches)
            with torch.no_grad():
                t_logits = t_net(x)
            s_logits = s_net(x)
            loss = ALPHA * kl(F.log_softmax(s_logits / T, 1), F.softmax(t_logits / T, 1)) * T * T + (1 - ALPHA) * F.cross_entropy(s_logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        yield


def _forever(loader):
    while True:
        yield from loader


# ----------------------------------------------------------------------------- kdviz and the bare loop
def kdviz_chunks(data, teacher, steps: int, jitter: int, total: int, cache=None, amp: bool = False):
    """``kdviz.engine.train``: one record (``steps`` steps) per ``next()``."""
    cfg = TrainConfig(batch_size=BATCH, lr=LR, seed=SEED, jitter=jitter, log_every=steps, max_steps=total, epochs=1000, amp=amp)
    yield from train(make_model(STUDENT, SEED), data, cfg, teacher=teacher, distill=DistillConfig(T=T, alpha=ALPHA), device="cpu", teacher_logits=cache)


def end_to_end_chunks(data, teacher, epochs: int):
    """What a user waits for: ``epochs`` of distillation from a fresh student, the engine building the
    teacher-logit cache in its setup (no cache passed in) — one whole run per ``next()``."""
    while True:
        cfg = TrainConfig(batch_size=BATCH, lr=LR, seed=SEED, log_every=10**9, epochs=epochs)
        for _ in train(make_model(STUDENT, SEED), data, cfg, teacher=teacher, distill=DistillConfig(T=T, alpha=ALPHA), device="cpu"):
            pass
        yield


def bare_end_to_end_chunks(data, teacher, epochs: int):
    """The ceiling of the end-to-end row: the teacher-logit pass the engine's setup makes (float32), then
    ``epochs`` of bare student steps from a fresh student — no engine at all."""
    steps = epochs * (len(data) // BATCH)
    while True:
        step = bare_step_fn(data, teacher_logits_cache(teacher, data))
        for i in range(steps):
            step(i)
        yield


def end_to_end(bundle, teacher, args) -> tuple[Contender, Contender, Contender]:
    """The end-to-end row, interleaved with the tutorial loop and its bare ceiling in rounds of their own."""
    samples = args.e2e_epochs * (len(bundle.train) // BATCH) * BATCH
    # the tutorial's chunk here lasts seconds, like the runs beside it: a 20-step chunk (~0.5 s) sampled the
    # shared VM's speed too briefly to set a ratio against a 10-s run
    cs = [Contender("baseline (tutorial)", tutorial_chunks(teacher, args.e2e_slow_steps, False), args.e2e_slow_steps * BATCH),
          Contender(f"kdviz end to end, {args.e2e_epochs} epochs", end_to_end_chunks(bundle.train, teacher, args.e2e_epochs), samples),
          Contender(f"bare end to end, {args.e2e_epochs} epochs", bare_end_to_end_chunks(bundle.train, teacher.eval(), args.e2e_epochs),
                    samples)]
    interleave(cs, args.e2e_rounds, alternate=True)  # kdviz and bare take turns right after the tutorial: see interleave
    return cs[0], cs[1], cs[2]


def cache_agreement(teacher, x: torch.Tensor) -> str:
    """Cached logits in float32 vs bf16 autocast: argmax agreement and max |Δ| of the soft targets at T."""
    full, low = teacher_logits_cache(teacher, x), teacher_logits_cache(teacher, x, amp=True)
    agree = (full.argmax(-1) == low.argmax(-1)).float().mean()
    delta = (F.softmax(full / T, -1) - F.softmax(low / T, -1)).abs().max()
    return f"argmax agreement {100 * agree:.2f} %, max |Δ soft target| at T={T:g}: {delta:.2e}"


def bare_step_fn(data, cache):
    """One student step with nothing else: index, forward, KD loss, backward, fused Adam."""
    model = make_model(STUDENT, SEED)
    opt = optim.Adam(list(model.parameters()), lr=LR)  # the engine's fused Adam (kdviz/optim.py): same kernel as torch's fused=True
    n = len(data) // BATCH * BATCH
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(SEED))

    def step(i: int) -> None:
        idx = perm[(i * BATCH) % n : (i * BATCH) % n + BATCH]
        x, y, t = data.gather(idx), data.y.index_select(0, idx), cache.index_select(0, idx)  # decodes the batch
        s, _ = model(x)
        log_t, log_s = F.log_softmax(t / T, -1), F.log_softmax(s / T, -1)
        loss = ALPHA * (log_t.exp() * (log_t - log_s)).sum(-1).mean() * (T * T) + (1 - ALPHA) * F.cross_entropy(s, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bare_chunks(step, steps: int):
    i = 0
    while True:
        for _ in range(steps):
            step(i)
            i += 1
        yield


def matmul_chunks(reps: int, size: int = 2048):
    a, b = torch.randn(size, size), torch.randn(size, size)
    while True:
        for _ in range(reps):
            a @ b
        yield


def step_flops(step) -> int:
    """FLOPs of one bare student step (forward + backward), counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(0)
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- report
def build(bundle, args):
    teacher = make_model(TEACHER, SEED + 1)
    t0 = time.perf_counter()
    cache = teacher_logits_cache(teacher, bundle.train)  # exactly what the engine does in its setup
    cache_s = time.perf_counter() - t0
    total = (args.rounds + 1) * args.fast_steps
    bare = bare_step_fn(bundle.train, cache)
    cs = [
        Contender("baseline (tutorial)", tutorial_chunks(teacher, args.slow_steps, False), args.slow_steps * BATCH),
        Contender("baseline + aug", tutorial_chunks(teacher, args.slow_steps, True), args.slow_steps * BATCH),
        Contender("kdviz cached", kdviz_chunks(bundle.train, teacher, args.fast_steps, 0, total, cache), args.fast_steps * BATCH),
        # right after "kdviz cached": each pair is timed back to back, so a drift of the shared VM's speed between
        # them (the aug chunks take seconds) does not land in the engine / bare ratio
        Contender("bare student step", bare_chunks(bare, args.fast_steps), args.fast_steps * BATCH),
        Contender("kdviz aug (teacher/batch)", kdviz_chunks(bundle.train, teacher, args.aug_steps, 2, (args.rounds + 1) * args.aug_steps), args.aug_steps * BATCH),
        Contender("kdviz aug + amp (bf16)", kdviz_chunks(bundle.train, teacher, args.aug_steps, 2, (args.rounds + 1) * args.aug_steps, amp=True), args.aug_steps * BATCH),
        Contender("matmul 2048²", matmul_chunks(args.matmuls), args.matmuls),  # "samples" = matmuls
    ]
    return cs, cache_s, step_flops(bare)


def report(cs, cache_s: float, flops: int, n_train: int) -> None:
    base, base_aug, cached, bare, aug, aug_amp, mm = cs
    print(f"{'contender':<28}{'samples/s (median)':>20}  spread over rounds")
    for c in cs[:-1]:
        print(f"{c.name:<28}{c.median_rate():>20,.0f}  {spread(c.rates())}")
    mm_gflops = mm.median_rate() * 2 * 2048**3 / 1e9
    r_cached, r_aug, r_amp = paired_ratio(cached, base), paired_ratio(aug, base_aug), paired_ratio(aug_amp, base_aug)
    frac = paired_ratio(cached, bare)
    print(f"\nteacher-logit cache (once per teacher and transfer set): {cache_s:.2f} s for {n_train:,} images")
    print(f"ratio kdviz cached / baseline            : {r_cached:5.2f}×")
    print(f"ratio kdviz aug / baseline+aug           : {r_aug:5.2f}×   (kdviz aug / plain baseline: {paired_ratio(aug, base):.2f}×)")
    print(f"ratio kdviz aug+amp / baseline+aug       : {r_amp:5.2f}×   (bf16 autocast, opt-in: TrainConfig(amp=True))")
    epoch_s = n_train / cached.median_rate()
    for epochs in (1, 3, 10):
        whole = epochs * n_train / base.median_rate() / (cache_s + epochs * epoch_s)
        print(f"  incl. the one-off cache, a {epochs:>2}-epoch run  : {whole:5.2f}×")
    print(f"engine / bare student step               : {100 * frac:5.1f} %  (steady state)")
    per_step = flops / BATCH
    print(f"student step: {flops / 1e6:.1f} MFLOP per batch of {BATCH}; achieved {cached.median_rate() * per_step / 1e9:.1f} GFLOP/s (kdviz), "
          f"{bare.median_rate() * per_step / 1e9:.1f} GFLOP/s (bare) vs {mm_gflops:.1f} GFLOP/s for a 2048² matmul on the same threads")
    print()
    print(verdict("kdviz cached vs baseline (steady state)", r_cached, 6.0, "×"))
    print(verdict("kdviz teacher-every-batch (aug) vs baseline+aug, float32", r_aug, 2.0, "×"))
    print(verdict("engine as a fraction of the bare loop", 100 * frac, 93.0, " %"))


def report_end_to_end(base: Contender, e2e: Contender, bare: Contender, epochs: int, agreement: str) -> None:
    print(f"\nend to end ({len(e2e.times)} interleaved rounds): {e2e.name} {e2e.median_rate():,.0f} samples/s "
          f"({statistics.median(e2e.times):.1f} s per run incl. the teacher pass) vs tutorial {base.median_rate():,.0f} samples/s")
    print(f"ceiling, {bare.name} (teacher pass + bare steps, no engine): {statistics.median(bare.times):.1f} s per run, "
          f"{paired_ratio(bare, base):.2f}× the tutorial loop; kdviz / bare {100 * paired_ratio(e2e, bare):.1f} %")
    print(f"teacher pass in reduced precision (bf16 autocast) vs float32: {agreement}; bf16 native here: {bf16_is_fast('cpu')} "
          "(the engine uses it only where native)")
    print(verdict(f"kdviz end to end ({epochs} epochs incl. teacher pass) vs baseline", paired_ratio(e2e, base), 8.0, "×"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for every contender (default 1: the cores are shared)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--fast-steps", type=int, default=200, help="steps per chunk for kdviz cached and bare")
    ap.add_argument("--aug-steps", type=int, default=40, help="steps per chunk for kdviz with the teacher every batch")
    ap.add_argument("--slow-steps", type=int, default=20, help="steps per chunk for the tutorial baselines")
    ap.add_argument("--matmuls", type=int, default=4)
    ap.add_argument("--e2e-epochs", type=int, default=3, help="epochs of the end-to-end run")
    ap.add_argument("--e2e-rounds", type=int, default=6, help="interleaved rounds of end-to-end runs vs tutorial chunk "
                    "(kdviz and bare swap places each round: an even number gives each the same share of both places)")
    ap.add_argument("--e2e-slow-steps", type=int, default=200, help="steps per tutorial chunk in the end-to-end rounds")
    args = ap.parse_args()
    setup_threads(args.threads)
    bundle = mnist_or_exit()
    print(machine_line(args.threads))
    cs, cache_s, flops = build(bundle, args)
    t0 = time.perf_counter()
    interleave(cs, args.rounds)
    print(f"{args.rounds} interleaved rounds in {time.perf_counter() - t0:.0f} s\n")
    report(cs, cache_s, flops, len(bundle.train))
    teacher = make_model(TEACHER, SEED + 1)
    base, e2e, bare = end_to_end(bundle, teacher, args)
    report_end_to_end(base, e2e, bare, args.e2e_epochs, cache_agreement(teacher, bundle.train.images(0, 10000)))


if __name__ == "__main__":
    main()
