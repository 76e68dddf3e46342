"""Scenario results: per-seed metrics, the bias correction, mean ± std summaries and the text report.

All plain data (JSON-ready dicts and lists), so a result can be stored, sent between processes
and redrawn without a model: the omitted-digit result keeps test logits, and
:func:`bias_accuracy` recomputes accuracy for any bias added to the missing digit's logit.
"""
from __future__ import annotations

import math

import torch

from kdviz import data as kdata
from kdviz.evaluation import eval_from_logits, reliability
from kdviz.experiments.stats import compare, mean_std

ROLES = ("distilled", "scratch")
LIVE_TEST_N = 1000
BIAS_GRID = tuple(round(0.25 * i, 2) for i in range(33))  # 0 … 8 in steps of 0.25
# Hinton, Vinyals & Dean 2015, §3 (MNIST): test errors out of 10,000.
PAPER_ERRORS = {"teacher": 67, "scratch": 146, "distilled": 74}
PAPER_OMITTED = {"errors": 206, "errors_on_digit": 133, "digit_count": 1010, "bias": 3.5, "digit_acc_after": 0.986}


def live_test_set(test: kdata.TensorData) -> kdata.TensorData:
    """A fixed sample of the test set for evaluations during training; results use the full set."""
    return test if len(test) <= LIVE_TEST_N else kdata.random_subset(test, LIVE_TEST_N, seed=0)


# ----------------------------------------------------------------------------- bias correction
def bias_accuracy(logits, labels, digit: int, bias: float) -> tuple[float, float]:
    """``(overall accuracy, accuracy on digit)`` after adding ``bias`` to the digit's logit.

    ``logits`` ``[N, C]`` and ``labels`` ``[N]`` (tensors or nested lists).
    """
    z = torch.as_tensor(logits, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    if z.ndim != 2 or y.shape != z.shape[:1] or not 0 <= digit < z.shape[1]:
        raise ValueError(f"need logits [N, C], labels [N] and a digit in 0..C-1; got {tuple(z.shape)}, {tuple(y.shape)}, {digit}")
    z = z.clone()
    z[:, digit] += float(bias)
    pred = z.argmax(1)
    on_digit = y == digit
    digit_acc = float((pred[on_digit] == digit).float().mean()) if bool(on_digit.any()) else float("nan")
    return float((pred == y).float().mean()), digit_acc


def bias_curve(logits, labels, digit: int, biases=BIAS_GRID) -> dict:
    """Accuracy overall and on ``digit`` for every bias in ``biases``: ``{"bias", "overall", "digit"}`` lists."""
    pairs = [bias_accuracy(logits, labels, digit, b) for b in biases]
    return {"bias": list(biases), "overall": [p[0] for p in pairs], "digit": [p[1] for p in pairs]}


def best_bias(curve: dict) -> float:
    """The bias that maximises overall test accuracy — the paper's choice of 3.5 — smallest on ties."""
    best = max(range(len(curve["bias"])), key=lambda i: (round(curve["overall"][i], 6), -i))
    return float(curve["bias"][best])


# ----------------------------------------------------------------------------- per seed and summaries
def seed_result(logits: torch.Tensor, labels: torch.Tensor, seed: int, time_s: float, omit: int | None) -> dict:
    """Plain metrics of one student from its test logits ``[N, C]``."""
    ev = eval_from_logits(logits, labels)
    rel = reliability(logits, labels)
    out = {"seed": seed, "accuracy": ev.accuracy, "errors": ev.errors, "per_class": ev.per_class, "time_s": time_s,
           "ece": rel["ece"], "reliability": rel}
    if omit is not None:
        curve = bias_curve(logits, labels, omit)
        b = best_bias(curve)
        after = bias_accuracy(logits, labels, omit, b)
        out.update(digit_acc=ev.per_class[omit], best_bias=b, accuracy_after=after[0], digit_acc_after=after[1],
                   digit_errors=sum(ev.confusion[omit]) - ev.confusion[omit][omit],
                   bias_curve=curve)
    return out


def summarise_values(values: list[float]) -> dict:
    """mean ± std as plain data; NaN entries (a class absent from the test set) give NaN."""
    if not values or any(not math.isfinite(v) for v in values):
        return {"mean": float("nan"), "std": float("nan"), "n": len(values)}
    return mean_std(values).to_dict()


def summarise_runs(runs: dict[str, list[dict]], omit: int | None) -> dict:
    keys = ["accuracy", "errors", *(["ece"] if all("ece" in r for rs in runs.values() for r in rs) else [])] + (["digit_acc", "digit_acc_after", "accuracy_after", "best_bias"] if omit is not None else [])
    out = {}
    for role, results in runs.items():
        out[role] = {k: summarise_values([r[k] for r in results]) for k in keys}
        out[role]["per_class"] = [summarise_values([r["per_class"][c] for r in results]) for c in range(len(results[0]["per_class"]))]
    return out


def comparisons(runs: dict[str, list[dict]], keys: tuple[str, ...]) -> dict:
    """Distilled − scratch for each key (and the calibration error when the runs carry it), with the 2·SE verdict."""
    out = {}
    with_ece = all("ece" in r for role in ROLES for r in runs[role])
    for key in (*keys, "ece") if with_ece and "ece" not in keys else keys:
        c = compare([r[key] for r in runs["distilled"]], [r[key] for r in runs["scratch"]])
        gains = [d[key] - s[key] for d, s in zip(runs["distilled"], runs["scratch"])]
        out[key] = {"diff": c.diff, "stderr": c.stderr, "within_noise": c.within_noise, "text": c.format(scale=100),
                    "paired_gain": summarise_values(gains)}
    return out


# ----------------------------------------------------------------------------- reporting
def pct(d: dict, digits: int = 1) -> str:
    """A summarise_values() dict of fractions as "98.1 ± 0.2" percent."""
    if not math.isfinite(d["mean"]):
        return "n/a"
    if d.get("n") == 1:
        return f"{100 * d['mean']:.{digits}f}"  # one seed: no spread to show
    return f"{100 * d['mean']:.{digits}f} ± {100 * d['std']:.{digits}f}"


def report_lines(result: dict) -> list[str]:
    """A plain-text table of a scenario result (CLI and bench)."""
    s, n = result["summary"], len(result["seeds"])
    t = result["teacher"]
    lines = [f"{result['scenario']} on {result['data']['name']} ({result['device']}), {n} seed(s): {result['transfer']['description']}",
             f"  teacher   {100 * t['accuracy']:.2f}% ({t['errors']} errors) [{t.get('source', '?')}]"]
    for role in ROLES:
        err = s[role]["errors"]
        line = f"  {role:<9} {pct(s[role]['accuracy'], 2)}%  errors {err['mean']:.0f}" + (f" ± {err['std']:.0f}" if n > 1 else "")
        if result["scenario"] == "omitted-digit":
            d = result["config"]["omit"]
            line += (f"  | digit {d}: {pct(s[role]['digit_acc'])}% → {pct(s[role]['digit_acc_after'])}% "
                     f"after bias {s[role]['best_bias']['mean']:.2f} (the one maximising overall test accuracy)")
        if "ece" in s[role]:
            line += f"  ECE {pct(s[role]['ece'], 2)}%"
        lines.append(line)
    if "ece" in t:
        lines[1] += f"  ECE {100 * t['ece']:.2f}%"
    for key, c in result["comparison"].items():
        lines.append(f"  distilled − scratch ({key}): {c['text']}")
    if "paper_errors" in result:
        p = result["paper_errors"]
        lines.append(f"  paper (test errors): teacher {p['teacher']}, scratch {p['scratch']}, distilled {p['distilled']}")
    return lines
