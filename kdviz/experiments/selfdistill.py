"""Self-distillation: no pretrained teacher of a different architecture.

- :func:`born_again` — Born-Again Networks (Furlanello et al. 2018): generation 0 learns from the
  labels; generation g (same architecture, fresh weights) is distilled from generation g − 1.
- :func:`mutual_learning` — Deep Mutual Learning (Zhang et al. 2018): two students start from
  scratch and, on the same batches, each minimises CE + KL(peer ‖ self).

Both are generators of plain-dict events (the ``kdviz/runtime/protocol.py`` protocol: "status", "record",
"result"); the trained models are the generator's return value (``models = yield from ...``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Iterator

import torch
from torch import nn

from kdviz.batches import batch_order, steps_per_epoch
from kdviz.data import HIDDEN_LABEL, TensorData, random_shift
from kdviz.devices import resolve_device
from kdviz.engine import (
    NonFiniteLoss,
    StepRecord,
    TrainConfig,
    make_lr_schedule,
    make_model,
    make_optimizer,
    total_steps,
    train,
)
from kdviz.evaluation import agreement, evaluate, predict_logits
from kdviz.methods.objective import DistillConfig, Objective
from kdviz.models import ModelConfig

PEER_RUNS = ("dml_a", "dml_b", "dml_c", "dml_d")  # run names of the peers, in order
MAX_PEERS = len(PEER_RUNS)
DML_RUNS = PEER_RUNS[:2]


def check_peers(n: int, cap: int = MAX_PEERS) -> int:
    """``n`` peers for mutual learning: a whole number in 2..cap (one peer has nobody to learn from)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= cap:
        raise ValueError(f"mutual learning needs 2 to {cap} peers, got {n!r}")
    return n


def generation_distills(distill: DistillConfig, generations: int, temperatures=None) -> list[DistillConfig]:
    """One DistillConfig per taught generation (1..generations−1); ``temperatures`` sets each one's T."""
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 1:
        raise ValueError(f"generations must be an integer >= 1 (generation 0 learns from labels), got {generations!r}")
    if temperatures is None:
        return [distill] * (generations - 1)
    temps = list(temperatures)
    if len(temps) != generations - 1:
        raise ValueError(f"give one temperature per taught generation ({generations - 1} for {generations} generations), got {temps}")
    return [replace(distill, T=float(t)) for t in temps]  # DistillConfig validates each T


# ----------------------------------------------------------------------------- born-again networks
def born_again(
    model_cfg: ModelConfig,
    data: TensorData,
    train_cfg: TrainConfig,
    distill: DistillConfig,
    generations: int,
    test: TensorData,
    device: str | torch.device | None = None,
    seed: int = 0,
    temperatures=None,
) -> Iterator[dict]:
    """Born-Again Networks: ``generations`` students of one architecture, each taught by the previous.

    Generation 0 is trained from the labels alone; generation g ≥ 1 is distilled from generation
    g − 1 with ``distill`` (its T replaced by ``temperatures[g − 1]`` when given: one per taught
    generation). Generation g uses ``seed + g`` for its initial weights and its data
    order (``train_cfg.seed`` is replaced). Events: ``status``; ``record`` (``run="gen{g}"``,
    ``generation=g``); ``generation`` (its test accuracy, agreement with its teacher); a final
    ``result`` with one accuracy per generation and the accuracy of the ensemble of all generations.
    Returns the list of trained models.
    """
    distills = generation_distills(distill, generations, temperatures)
    device = resolve_device(device)
    models: list[nn.Module] = []
    summaries: list[dict] = []
    for g in range(generations):
        teacher = models[-1] if models else None
        source = "the labels" if teacher is None else f"generation {g - 1} at T={distills[g - 1].T:g}"
        yield {"type": "status", "text": f"generation {g}: training {model_cfg.label()} from {source}", "generation": g}
        model = make_model(model_cfg, seed + g, device)
        cfg = replace(train_cfg, seed=seed + g)
        for rec in train(model, data, cfg, teacher=teacher, distill=distills[g - 1] if teacher else None, test=test, device=device):
            yield {"type": "record", "run": f"gen{g}", "generation": g, **rec.to_dict()}
        summaries.append(_generation_summary(g, model, teacher, test))
        yield {"type": "generation", **summaries[-1]}
        models.append(model)
    yield {"type": "result", "run": "born_again", "generations": generations,
           "test_acc": [s["test_acc"] for s in summaries], "per_generation": summaries,
           "ensemble_acc": ensemble_accuracy(models, test)}
    return models


def _generation_summary(g: int, model: nn.Module, teacher: nn.Module | None, test: TensorData) -> dict:
    return {"generation": g, "test_acc": evaluate(model, test).accuracy,
            "agreement_with_teacher": agreement(model, teacher, test) if teacher is not None else None}


def ensemble_accuracy(models: list[nn.Module], test: TensorData) -> float:
    """Accuracy of the average of the models' softmax outputs (BAN's ensemble of generations)."""
    device = next(models[0].parameters()).device
    data = test.to(device)
    probs = sum(predict_logits(m, data).softmax(-1) for m in models)  # [N, C]
    return float((probs.argmax(-1) == data.y).float().mean())


# ----------------------------------------------------------------------------- deep mutual learning
# The engine's ``train`` optimises one student against a fixed teacher; DML updates two students
# in lockstep, each taught by the other's current logits. So DML builds its loop from the engine's
# public pieces (make_optimizer, make_lr_schedule, batch_order, total_steps, steps_per_epoch,
# StepRecord, NonFiniteLoss, evaluate) plus the ``Objective`` every method uses; what it still
# keeps itself (the loss meter and the optimisation step) is private inside kdviz.engine.
class _Meter:
    """Loss sums since the last record for one student (kept on the device; one sync per record)."""

    def __init__(self) -> None:
        self.seen = 0  # images since the first step (never reset)
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps, self.samples, self.t0 = 0, 0, time.perf_counter()

    def add(self, values: dict[str, torch.Tensor], batch: int) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums[k] + v.detach() if k in self.sums else v.detach()
        self.steps, self.samples = self.steps + 1, self.samples + batch

    def flush(self, step: int, per_epoch: int, lr: float, T: float, alpha: float, start: float, test_acc) -> StepRecord:
        now = time.perf_counter()
        self.seen += self.samples
        mean = {k: float(v) / max(1, self.steps) for k, v in self.sums.items()}
        rec = StepRecord(
            step=step, epoch=step / per_epoch, total=mean.pop("total"), train_acc=mean.pop("train_acc"),
            losses={k[2:]: v for k, v in mean.items() if k.startswith("w:")},
            raw={k[2:]: v for k, v in mean.items() if k.startswith("r:")},
            lr=lr, T=T, alpha=alpha, samples_per_s=self.samples / max(now - self.t0, 1e-9),
            elapsed_s=now - start, test_acc=test_acc, samples=self.seen)
        self._reset()
        return rec


@dataclass
class _Peer:
    """One DML student with its own optimiser, learning-rate schedule and loss meter."""

    model: nn.Module
    opt: object  # kdviz.engine.make_optimizer
    sched: object
    meter: _Meter

    @classmethod
    def build(cls, model: nn.Module, cfg: TrainConfig, steps: int) -> "_Peer":
        opt = make_optimizer(model.train().parameters(), cfg)
        return cls(model, opt, make_lr_schedule(opt, cfg, steps), _Meter())

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def update(self, total: torch.Tensor, step: int) -> None:
        """One optimisation step on ``total``; a NaN/inf loss stops training before it touches the weights (CPU)."""
        if total.device.type == "cpu" and not torch.isfinite(total):
            raise NonFiniteLoss(step, float(total.detach()), self.lr)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()


def _mean_terms(terms: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: sum(t[k] for t in terms) / len(terms) for k in terms[0]}


def _dml_step(peers: dict[str, _Peer], objective: Objective, x, y, T: float, alpha: float, step: int) -> None:
    """One lockstep update: every student sees batch x and learns from the others' detached logits
    (the mean of its KL terms to each other peer, as in the paper's K-student loss)."""
    logits = {n: p.model(x)[0] for n, p in peers.items()}  # [B, C] each
    labelled = y != HIDDEN_LABEL
    for name in peers:
        pairs = [objective(logits[name], {}, logits[o].detach(), {}, y, T, alpha) for o in peers if o != name]
        weighted, raw = _mean_terms([w for w, _ in pairs]), _mean_terms([r for _, r in pairs])
        total = sum(weighted.values())
        peers[name].update(total, step)
        acc = ((logits[name].argmax(-1) == y) & labelled).sum() / labelled.sum().clamp_min(1)
        peers[name].meter.add({"total": total, "train_acc": acc.float(), **{f"w:{k}": v for k, v in weighted.items()},
                               **{f"r:{k}": v for k, v in raw.items()}}, y.shape[0])


def mutual_learning(
    cfg_a: ModelConfig,
    cfg_b: ModelConfig,
    data: TensorData,
    train_cfg: TrainConfig,
    T: float = 1.0,
    alpha: float = 0.5,
    test: TensorData | None = None,
    device: str | torch.device | None = None,
) -> Iterator[dict]:
    """Deep Mutual Learning: students A and B, from scratch, each minimising ``alpha·T²·KL(peer ‖ self) + (1−alpha)·CE``.

    The paper's loss is ``CE + KL`` at T = 1, i.e. the defaults here up to a factor 2. Both students
    see the same batches (data order and jitter from ``train_cfg.seed``) and are updated
    simultaneously from one forward pass each (the paper's Algorithm 1 updates them in turn).
    A is initialised from ``train_cfg.seed`` and B from ``train_cfg.seed + 1`` — identical twins
    would agree from the start and teach each other nothing. Events: ``record`` with
    ``run`` in ("dml_a", "dml_b"), then ``result`` (test accuracy of both, their agreement).
    Returns ``(model_a, model_b)``.
    """
    models = yield from mutual_learning_peers((cfg_a, cfg_b), data, train_cfg, T, alpha, test, device)
    return tuple(models)


def mutual_learning_peers(
    cfgs, data: TensorData, train_cfg: TrainConfig, T: float = 1.0, alpha: float = 0.5,
    test: TensorData | None = None, device: str | torch.device | None = None, max_peers: int = MAX_PEERS,
) -> Iterator[dict]:
    """Deep Mutual Learning with 2..``max_peers`` students (``cfgs``, one architecture each).

    Peer i is initialised from ``train_cfg.seed + i`` and runs as ``PEER_RUNS[i]``; each minimises
    ``alpha·mean_j T²·KL(peer_j ‖ self) + (1−alpha)·CE`` over the other peers j. The result holds
    each peer's test accuracy and the mean pairwise agreement. Returns the list of models.
    """
    cfgs = list(cfgs)
    check_peers(len(cfgs), max_peers)
    device = resolve_device(device)
    distill = DistillConfig(T=T, alpha=alpha)  # validates T and alpha
    data = data.to(device)
    models = {PEER_RUNS[i]: make_model(c, train_cfg.seed + i, device) for i, c in enumerate(cfgs)}
    names = " ⇄ ".join(c.label() for c in cfgs)
    yield {"type": "status", "text": f"mutual learning: {names} on {len(data)} images (T={T:g}, alpha={alpha:g})"}
    yield from _dml_loop(models, data, train_cfg, distill, test)
    result = {"type": "result", "run": "dml", "test_acc": None, "agreement": None}
    if test is not None:
        result["test_acc"] = {n: evaluate(m, test).accuracy for n, m in models.items()}
        pairs = [(a, b) for i, a in enumerate(models) for b in list(models)[i + 1:]]
        result["agreement"] = sum(agreement(models[a], models[b], test) for a, b in pairs) / len(pairs)
    yield result
    return list(models.values())


def _dml_loop(models: dict, data: TensorData, cfg: TrainConfig, distill: DistillConfig, test) -> Iterator[dict]:
    steps, per_epoch = total_steps(len(data), cfg), steps_per_epoch(len(data), cfg.batch_size)
    peers = {n: _Peer.build(m, cfg, steps) for n, m in models.items()}
    torch.manual_seed(cfg.seed)  # dropout masks
    gen = torch.Generator().manual_seed(cfg.seed)  # data order and jitter, shared by both students
    order, objective = batch_order(len(data), cfg.batch_size, gen, data.device), Objective(distill)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        progress = (step - 1) / max(1, steps - 1)
        T, alpha = distill.T_at(progress), distill.alpha_at(progress)
        idx = next(order)
        _dml_step(peers, objective, random_shift(data.gather(idx), cfg.jitter, gen), data.y[idx], T, alpha, step)
        last = step == steps
        evaluate_now = test is not None and (last or step % (cfg.eval_every or per_epoch) == 0)
        if step % cfg.log_every == 0 or last or evaluate_now:
            for name, peer in peers.items():
                acc = evaluate(peer.model, test).accuracy if evaluate_now else None
                rec = peer.meter.flush(step, per_epoch, peer.lr, T, alpha, start, acc)
                rec.done = last
                peer.model.train()
                if not all(math.isfinite(v) for v in (rec.total, *rec.losses.values())):
                    raise NonFiniteLoss(step, rec.total, rec.lr)
                yield {"type": "record", "run": name, **rec.to_dict()}
