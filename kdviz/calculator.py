"""The Temperature lab's KD calculator, computed: every intermediate of the Hinton KD loss for one
example, and the tutorial's hand-annotated numbers recomputed (pure; the page draws them).

Everything comes from :mod:`kdviz.losses`; only the numbers the tutorial printed are constants here.
"""
from __future__ import annotations

import torch

from kdviz import losses

DT = torch.float64  # the calculator works in double precision, so its 4-decimal display is exact
# What a widely copied tutorial wrote for the default example (the Temperature lab's note on it).
TUTORIAL_LOGPROB0, TUTORIAL_KD, TUTORIAL_TOTAL = -0.7315, 0.0153, 0.2399
TUTORIAL_RATIOS = (0.0504, 0.0504, -0.1996)  # its log p − log q per class (exact: 0.0516, 0.0516, −0.1984)


def parse_logits(text: str, what: str) -> torch.Tensor:
    """"2, 1, 0" (brackets allowed) → float64 tensor ``[C]``; ValueError naming the bad entry."""
    parts = [p.strip() for p in str(text).strip().strip("[]()").split(",")]
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"{what}: could not read {part!r} as a number (write comma-separated numbers, e.g. 2, 1, 0)") from None
    if len(values) < 2:
        raise ValueError(f"{what} need at least 2 classes, got {len(values)} value(s)")
    return torch.tensor(values, dtype=DT)


def worked_example(z_t: torch.Tensor, z_s: torch.Tensor, label: int, T: float, alpha: float) -> dict:
    """Every intermediate of the Hinton KD loss for one example, from ``kdviz.losses`` (ValueError on bad input)."""
    parts = losses.distillation_loss(z_s[None], z_t[None], torch.tensor([label]), T, alpha)  # validates everything
    p = losses.soft_targets(z_t, T)  # [C]
    log_p = torch.log_softmax(z_t / T, dim=-1)
    log_q = torch.log_softmax(z_s / T, dim=-1)
    terms = p * (log_p - log_q)  # KL summands [C]
    return {"p": p, "log_p": log_p, "log_q": log_q, "terms": terms, "kl": terms.sum(),
            "kd": parts["kd"], "ce": parts["ce"], "total": parts["total"]}


def _row(name: str, ratios: torch.Tensor, p: torch.Tensor, T: float, alpha: float, ce: float) -> dict:
    """One table row: the log-ratios log p − log q, the KL terms p·(log p − log q), their sum, KD and the total."""
    terms = p * ratios  # [C] KL summands
    kd = T * T * float(terms.sum())
    return {"variant": name, "log p − log q": ", ".join(f"{float(v):+.4f}" for v in ratios),
            "KL terms": ", ".join(f"{float(v):+.4f}" for v in terms), "KL = Σ": f"{float(terms.sum()):.6f}",
            "KD = T²·KL": f"{kd:.4f}", "total": f"{alpha * kd + (1 - alpha) * ce:.4f}", "_kd": kd}


def tutorial_rows(r: dict, T: float, alpha: float) -> list[dict]:
    """The default example recomputed: exactly; with the tutorial's −0.7315 for log q₀ (alone, or as a shift of all
    three); and with the tutorial's own log-ratios and 4-decimal p, which reproduce its KD exactly. Last row: its annotation."""
    ratios, ce = r["log_p"] - r["log_q"], float(r["ce"])
    only_first = ratios.clone()
    only_first[0] = r["log_p"][0] - TUTORIAL_LOGPROB0
    shift = r["log_q"][0] - TUTORIAL_LOGPROB0  # all three log q off by the same amount (a rounded log Σe^z)
    p4 = torch.round(r["p"], decimals=4)  # p as the tutorial printed it
    rows = [_row("exact (kdviz.losses)", ratios, r["p"], T, alpha, ce),
            _row("log q₀ = −0.7315, rest exact", only_first, r["p"], T, alpha, ce),
            _row("all log q off by the same amount", ratios + shift, r["p"], T, alpha, ce),
            _row("the tutorial's log-ratios, its 4-decimal p", torch.tensor(TUTORIAL_RATIOS, dtype=DT), p4, T, alpha, ce)]
    rows.append({"variant": "the tutorial's annotation", "log p − log q": "", "KL terms": "(not shown)",
                 "KL = Σ": f"{TUTORIAL_KD / (T * T):.6f}", "KD = T²·KL": f"{TUTORIAL_KD}", "total": f"{TUTORIAL_TOTAL}"})
    return rows
