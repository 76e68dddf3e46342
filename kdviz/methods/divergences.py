"""Choice of divergence between teacher and student outputs: reverse KL, Jensen–Shannon, MSE on logits.

Forward KL is Hinton KD (:mod:`kdviz.methods.kd`). Each divergence here is a logits-kind
:class:`Method` with ``divergence=True``: listed as a term it replaces ``alpha·KD`` by
``alpha·weight·divergence`` (weight 1: KD with its divergence swapped).
:func:`per_class_contributions` splits each divergence of one sample into its per-class terms
(they sum to the loss), for the Temperature lab's worked example.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdviz.losses import check_finite, check_same_shape, check_temperature
from kdviz.methods.registry import Method, Param

JS_BETA = 0.5  # default mixing weight of the Jensen–Shannon term (0.5: the symmetric JS divergence); Term.param sets it
DIVERGENCES = ("forward_kl", "reverse_kl", "js", "mse_logits")


def check_beta(beta: float) -> float:
    if not isinstance(beta, (int, float)) or not math.isfinite(beta) or not 0.0 < beta < 1.0:
        raise ValueError(f"the Jensen–Shannon mixing weight beta must lie strictly between 0 and 1, got beta={beta!r}")
    return float(beta)


def _checked(s: torch.Tensor, t: torch.Tensor) -> None:
    check_same_shape(s, t, "student logits", "teacher logits")
    if s.ndim < 1 or s.shape[-1] < 2:
        raise ValueError(f"logits need at least 2 classes on the last dim, got shape {tuple(s.shape)}")
    check_finite(s, "student logits")
    check_finite(t, "teacher logits")


def _per_class(s: torch.Tensor, t: torch.Tensor, T: float, divergence: str, beta: float) -> torch.Tensor:
    """Per-class terms ``[..., C]`` whose sum over the last dim is the per-position divergence."""
    s, t = (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x for x in (s, t))  # autocast halves
    if divergence == "mse_logits":
        return (s - t.detach()) ** 2 / s.shape[-1]
    log_s, log_t = F.log_softmax(s / T, dim=-1), F.log_softmax(t.detach() / T, dim=-1)
    if divergence == "forward_kl":
        return log_t.exp() * (log_t - log_s) * (T * T)
    if divergence == "reverse_kl":
        return log_s.exp() * (log_s - log_t) * (T * T)
    if divergence == "js":
        log_m = torch.logaddexp(log_t + math.log(beta), log_s + math.log(1.0 - beta))  # log(β p_t + (1−β) p_s)
        return (beta * log_t.exp() * (log_t - log_m) + (1.0 - beta) * log_s.exp() * (log_s - log_m)) * (T * T)
    raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")


def divergence_loss(s: torch.Tensor, t: torch.Tensor, T: float, divergence: str, beta: float = JS_BETA) -> torch.Tensor:
    """Mean over positions of the per-sample divergence (the KL family × T², as Hinton KD; MSE ignores T)."""
    T = check_temperature(T)
    beta = check_beta(beta)
    _checked(s, t)
    return _per_class(s, t, T, divergence, beta).sum(-1).mean()


def reverse_kl_loss(s, t, T: float) -> torch.Tensor:
    """KL(σ(s/T) ‖ σ(t/T)) · T²: mode-seeking — the student is punished for mass where the teacher has none."""
    return divergence_loss(s, t, T, "reverse_kl")


def js_loss(s, t, T: float, beta: float = JS_BETA) -> torch.Tensor:
    """β·KL(p_t ‖ m) + (1−β)·KL(p_s ‖ m), m = β p_t + (1−β) p_s, times T²; bounded, symmetric at β = 0.5."""
    return divergence_loss(s, t, T, "js", beta)


def mse_logits_loss(s, t, T: float = 1.0) -> torch.Tensor:
    """Mean squared difference of the raw logits (Ba & Caruana 2014), mean over samples and classes; no T."""
    return divergence_loss(s, t, 1.0, "mse_logits")


def per_class_contributions(s: torch.Tensor, t: torch.Tensor, T: float, beta: float = JS_BETA) -> dict[str, list[float]]:
    """For one sample's logits ``[C]``: each divergence's per-class terms (they sum to the divergence)."""
    T, beta = check_temperature(T), check_beta(beta)
    if s.ndim != 1:
        raise ValueError(f"per-class contributions take one sample's logits [C], got shape {tuple(s.shape)}")
    _checked(s, t)
    return {d: _per_class(s, t, 1.0 if d == "mse_logits" else T, d, beta).tolist() for d in DIVERGENCES}


def _reverse_term(s, t, labels, T):
    return reverse_kl_loss(s, t, T)


def _js_term(s, t, labels, T, beta=JS_BETA):
    return js_loss(s, t, T, beta)


def _mse_term(s, t, labels, T):
    return mse_logits_loss(s, t)


REVERSE_KL = Method(
    "reverse_kl", "Reverse KL", kind="logits", needs="logits", loss=_reverse_term,
    formula=r"T^2\,\mathrm{KL}(\sigma(s/T)\,\|\,\sigma(t/T))", paper="e.g. Gu et al. 2024 (MiniLLM)",
    transfers="the teacher's main modes (mode-seeking: mass where the teacher has little is penalised)",
    note="Total: alpha·weight·reverse KL + (1 − alpha)·CE (weight 1: KD with the divergence swapped).", divergence=True,
)
JS = Method(
    "js", "Jensen–Shannon", kind="logits", needs="logits", loss=_js_term,
    param=Param("beta", "β (mixing weight, strictly between 0 and 1)", JS_BETA, check_beta),
    formula=r"T^2\,[\beta\,\mathrm{KL}(p_t\|m) + (1-\beta)\,\mathrm{KL}(p_s\|m)],\ m=\beta p_t+(1-\beta)p_s",
    paper="Lin 1991; e.g. Agarwal et al. 2024 (generalised JSD)",
    transfers="the teacher's distribution through a bounded, symmetric divergence",
    note="β = 0.5 is the symmetric JS divergence; a small β behaves like β·forward KL, a β near 1 like "
         "(1 − β)·reverse KL (the loss shrinks towards both ends). "
         "Total: alpha·weight·JS + (1 − alpha)·CE (weight 1: KD with the divergence swapped).", divergence=True,
)
MSE_LOGITS = Method(
    "mse_logits", "MSE on logits", kind="logits", needs="logits", loss=_mse_term,
    formula=r"\tfrac{1}{C}\,\|s - t\|^2", paper="Ba & Caruana 2014; Kim et al. 2021",
    transfers="the teacher's raw logits, including their scale (no softmax, no temperature)",
    note="T is ignored. Total: alpha·weight·MSE + (1 − alpha)·CE (weight 1: KD with the divergence swapped).", divergence=True,
)
