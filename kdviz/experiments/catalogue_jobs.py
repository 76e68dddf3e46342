"""Job bodies of the distillation catalogue (``kdviz/runtime/protocol.py`` events), headless.

``catalogue_job(spec)`` runs one experiment of :mod:`kdviz.experiments.catalogue`; spec keys are
the fields of ``CatalogueConfig`` (``kind``, ``seeds``, ``transfer``, ``epochs``, ``T``, ...) plus
``data`` and ``device``. Records are named ``"<run> · s<seed>"``; the final ``result`` holds
``rows`` (``summarise``), ``notes`` (plain sentences) and ``config``.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from typing import Iterator

import torch
from torch import nn

from kdviz import data as kdata
from kdviz.devices import resolve_device
from kdviz.engine import TrainConfig, make_model, total_steps, train
from kdviz.evaluation import evaluate
from kdviz.experiments.assistants import teacher_assistant
from kdviz.experiments.catalogue import TITLES, CatalogueConfig, config_from_spec, gains_stop, summarise
from kdviz.experiments.ensembles import EnsembleTeacher, ensemble_report, kl_mean_offset
from kdviz.experiments.recipes import load_default_teacher
from kdviz.experiments.results import live_test_set
from kdviz.experiments.selfdistill import PEER_RUNS, born_again, mutual_learning_peers
from kdviz.checkpoints import load_checkpoint
from kdviz.evaluation import predict_logits
from kdviz.runtime.protocol import seed_run

EVAL_POINTS = 4  # live test evaluations per training run


def _cfg_for(cfg: CatalogueConfig, n: int, seed: int) -> TrainConfig:
    tc = cfg.train_config(seed)
    return replace(tc, eval_every=max(1, total_steps(n, tc) // EVAL_POINTS))


def _tag(events: Iterator[dict], seed: int) -> Iterator[dict]:
    """Events of one seed, with the seed in each record's run name; returns the generator's value."""
    gen = iter(events)
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value
        if ev["type"] == "record":
            ev = {**ev, "run": seed_run(ev["run"], seed), "seed": seed}
        elif ev["type"] == "result":
            continue  # the per-seed result is folded into the experiment's result
        yield ev


def _store(accs: dict, name: str, value: float) -> None:
    accs.setdefault(name, []).append(value)


# ----------------------------------------------------------------------------- the four experiments
def born_again_events(cfg: CatalogueConfig, bundle: kdata.DataBundle, device) -> Iterator[dict]:
    accs: dict[str, list[float]] = {}
    for seed in range(cfg.seeds):
        data = kdata.transfer_set(bundle.train, cfg.transfer, seed)
        models = yield from _tag(born_again(cfg.student(), data, _cfg_for(cfg, len(data), 0), cfg.distill(), cfg.generations,
                                            live_test_set(bundle.test), device, seed=100 * seed, temperatures=cfg.temperatures), seed)
        for g, m in enumerate(models):
            _store(accs, f"gen{g}", evaluate(m, bundle.test).accuracy)
        _store(accs, "ensemble of generations", _ensemble_acc(models, bundle.test))
    refs = {f"gen{g}": tuple(dict.fromkeys(("gen0", f"gen{g - 1}"))) for g in range(1, cfg.generations)}
    refs["ensemble of generations"] = ("gen0", f"gen{cfg.generations - 1}")
    rows = summarise(accs, refs)
    temps = ", ".join(f"gen{g + 1}: T={t:g}" for g, t in enumerate(cfg.temperatures or [cfg.T] * (cfg.generations - 1)))
    return rows, [f"temperatures — {temps}" if temps else "generation 0 only", gains_stop(rows)]


def _ensemble_acc(models: list[nn.Module], test: kdata.TensorData) -> float:
    device = next(models[0].parameters()).device
    logits = sum(predict_logits(m, test.to(device)) for m in models) / len(models)  # averaged logits
    return float((logits.argmax(-1).cpu() == test.y).float().mean())


def mutual_events(cfg: CatalogueConfig, bundle: kdata.DataBundle, device) -> Iterator[dict]:
    accs: dict[str, list[float]] = {}
    peers = PEER_RUNS[:cfg.peers]
    for seed in range(cfg.seeds):
        data = kdata.transfer_set(bundle.train, cfg.transfer, seed)
        tc = _cfg_for(cfg, len(data), 100 * seed)
        models = yield from _tag(mutual_learning_peers([cfg.student()] * cfg.peers, data, tc, cfg.T, cfg.alpha,
                                                       live_test_set(bundle.test), device, cfg.max_peers), seed)
        for i, (name, m) in enumerate(zip(peers, models)):
            _store(accs, f"{name} (mutual)", evaluate(m, bundle.test).accuracy)
            alone = make_model(cfg.student(), tc.seed + i, device)  # the same initial weights, no peer
            for rec in train(alone, data, tc, test=live_test_set(bundle.test), device=device):
                yield {"type": "record", "run": seed_run(f"{name} alone", seed), "seed": seed, **rec.to_dict()}
            _store(accs, f"{name} (alone)", evaluate(alone, bundle.test).accuracy)
    accs["mean of peers (mutual)"] = [sum(accs[f"{p} (mutual)"][s] for p in peers) / len(peers) for s in range(cfg.seeds)]
    accs["mean of peers (alone)"] = [sum(accs[f"{p} (alone)"][s] for p in peers) / len(peers) for s in range(cfg.seeds)]
    refs = {f"{p} (mutual)": (f"{p} (alone)",) for p in peers} | {"mean of peers (mutual)": ("mean of peers (alone)",)}
    return summarise(accs, refs), [f"{cfg.peers} peers, each {cfg.student().label()}, T={cfg.T:g}, alpha={cfg.alpha:g}; "
                                   "'alone' = the same initial weights and batches, learning from the labels only"]


def _cnn_teacher(cfg: CatalogueConfig, device) -> tuple[nn.Module, str]:
    model, mcfg, _ = load_checkpoint(cfg.teacher_ckpt) if cfg.teacher_ckpt else load_default_teacher()
    return model.to(device).eval(), mcfg.label()


def ta_events(cfg: CatalogueConfig, bundle: kdata.DataBundle, device, teacher: nn.Module | None = None) -> Iterator[dict]:
    label = "given teacher"
    if teacher is None:
        teacher, label = _cnn_teacher(cfg, device)
    accs: dict[str, list[float]] = {}
    for seed in range(cfg.seeds):
        data = kdata.transfer_set(bundle.train, cfg.transfer, seed)
        result = yield from _tag(teacher_assistant(teacher, cfg.assistant(), cfg.student(), data, _cfg_for(cfg, len(data), 100 * seed),
                                                   cfg.distill(), bundle.test, device, 100 * seed, live_test_set(bundle.test)), seed)
        for run, acc in result.items():
            _store(accs, run, acc)
    t_acc = evaluate(teacher, bundle.test).accuracy
    rows = summarise(accs, {"via assistant": ("direct", "scratch"), "direct": ("scratch",)})
    return rows, [f"teacher {label}: {100 * t_acc:.2f}% test accuracy; assistant {cfg.assistant().label()}; "
                  f"student {cfg.student().label()}; T={cfg.T:g}, alpha={cfg.alpha:g}"]


def _mlp_teacher(cfg: CatalogueConfig, bundle: kdata.DataBundle, device) -> Iterator[dict]:
    model = make_model(cfg.mlp_teacher(), 0, device)
    tc = TrainConfig(epochs=cfg.teacher_epochs, batch_size=128, lr=1e-3, log_every=20)
    for rec in train(model, bundle.train, tc, test=live_test_set(bundle.test), device=device):
        yield {"type": "record", "run": "MLP teacher", **rec.to_dict()}
    return model.eval()


def ensemble_events(cfg: CatalogueConfig, bundle: kdata.DataBundle, device, teachers: dict | None = None) -> Iterator[dict]:
    if teachers is None:
        cnn, label = _cnn_teacher(cfg, device)
        yield {"type": "status", "text": f"training the second teacher ({cfg.mlp_teacher().label()}) on the full training set"}
        teachers = {label: cnn, cfg.mlp_teacher().label(): (yield from _mlp_teacher(cfg, bundle, device))}
    teachers = {name: t.to(device) for name, t in teachers.items()}  # given ones may sit on another device
    report = ensemble_report(teachers, bundle.test, cfg.T)
    accs: dict[str, list[float]] = {}
    best = max(teachers, key=lambda n: report[n])
    for seed in range(cfg.seeds):
        data = kdata.transfer_set(bundle.train, cfg.transfer, seed)
        plan = [(f"from ensemble ({m})", EnsembleTeacher(teachers, m, cfg.T)) for m in cfg.modes]
        plan += [(f"from {best} alone", teachers[best]), ("scratch", None)]
        for run, teacher in plan:
            yield {"type": "status", "text": f"seed {seed}: student {run}"}
            model = make_model(cfg.student(), 100 * seed, device)
            tc = _cfg_for(cfg, len(data), 100 * seed)
            for rec in train(model, data, tc, teacher=teacher, distill=cfg.distill() if teacher is not None else None,
                             test=live_test_set(bundle.test), device=device):
                yield {"type": "record", "run": seed_run(run, seed), "seed": seed, **rec.to_dict()}
            _store(accs, run, evaluate(model, bundle.test).accuracy)
    refs = {f"from ensemble ({m})": (f"from {best} alone", "scratch") for m in cfg.modes} | {f"from {best} alone": ("scratch",)}
    offset = kl_mean_offset([predict_logits(t, bundle.test.images(0, 2000).to(device)) for t in teachers.values()], cfg.T)
    notes = ["teachers (one run each, full test set): " + "; ".join(f"{k} {100 * v:.2f}%" for k, v in report.items()),
             f"'kl_mean' trains exactly like 'probs' (same gradient); its loss is higher by a constant, here {offset:.3f}"]
    return summarise(accs, refs), notes


EVENTS = {"born-again": born_again_events, "mutual": mutual_events, "ta": ta_events, "ensemble": ensemble_events}


def catalogue_events(cfg: CatalogueConfig, bundle: kdata.DataBundle, device=None) -> Iterator[dict]:
    """One experiment, end to end: status and record events, then the ``result``."""
    device = resolve_device(device)
    yield {"type": "status", "text": f"{TITLES[cfg.kind]}: {cfg.seeds} seed(s) on {cfg.transfer} of {bundle.name}"}
    rows, notes = yield from EVENTS[cfg.kind](cfg, bundle, device)
    yield {"type": "result", "kind": cfg.kind, "title": TITLES[cfg.kind], "rows": rows, "notes": notes,
           "config": asdict(cfg), "data": {"source": bundle.source, "name": bundle.name}, "device": str(device)}


def catalogue_job(spec: dict) -> Iterator[dict]:
    """App job (``"fn": "kdviz.experiments.catalogue_jobs:catalogue_job"``)."""
    try:
        cfg = config_from_spec(spec)
        yield {"type": "status", "text": "loading data"}
        bundle = kdata.load_bundle(spec.get("data", "auto"))
        torch.manual_seed(0)
        yield from catalogue_events(cfg, bundle, spec.get("device"))
    except ValueError as err:
        yield {"type": "error", "text": str(err), "kind": type(err).__name__}
