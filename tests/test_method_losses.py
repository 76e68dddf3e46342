"""Feature / relation / decoupled / contrastive distillation losses vs. independent direct computations.

Each reference below is written out with python loops over plain floats (float64 tensors in,
``math`` out), never by calling the function under test a second way.
"""
from __future__ import annotations

import math

import pytest
import torch

from kdviz.data import HIDDEN_LABEL
from kdviz.losses import kd_loss
from kdviz.methods import METHODS
from kdviz.methods.adapters import make_regressor
from kdviz.methods.at import at_loss, attention_map
from kdviz.methods.cosine import cosine_loss
from kdviz.methods.crd import contrastive_loss
from kdviz.methods.dkd import dkd_loss
from kdviz.methods.fitnet import fitnet_loss
from kdviz.methods.rkd import RKD_ANGLE_MAX_BATCH, rkd_angle_loss, rkd_distance_loss
from kdviz.methods.sp import sp_loss

DT = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=DT)


# ----------------------------------------------------------------------------- plain-python references
def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1.0 else abs(x) - 0.5


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def softmax(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(x - m) for x in z]
    return [x / sum(e) for x in e]


def ref_attention(f: torch.Tensor) -> list[list[float]]:
    B, C, H, W = f.shape
    out = []
    for b in range(B):
        a = [sum(float(f[b, c, h, w]) ** 2 for c in range(C)) / C for h in range(H) for w in range(W)]
        n = norm(a)
        out.append([x / n for x in a])
    return out


def ref_at(fs: torch.Tensor, ft: torch.Tensor) -> float:
    a_s, a_t = ref_attention(fs), ref_attention(ft)
    diffs = [(x - y) ** 2 for rs, rt in zip(a_s, a_t) for x, y in zip(rs, rt)]
    return sum(diffs) / len(diffs)


def block_mean(f: torch.Tensor, k: int) -> torch.Tensor:
    """k×k average pooling written out with loops (the reference for adaptive pooling by an integer factor)."""
    B, C, H, W = f.shape
    out = torch.zeros(B, C, H // k, W // k, dtype=f.dtype)
    for i in range(H // k):
        for j in range(W // k):
            out[:, :, i, j] = sum(f[:, :, i * k + u, j * k + v] for u in range(k) for v in range(k)) / (k * k)
    return out


def ref_rkd_distance(es: torch.Tensor, et: torch.Tensor) -> float:
    def psi(e):
        B = e.shape[0]
        d = [[norm([float(e[i, k] - e[j, k]) for k in range(e.shape[1])]) for j in range(B)] for i in range(B)]
        mu = sum(d[i][j] for i in range(B) for j in range(B) if i != j) / (B * (B - 1))
        return [[x / mu for x in row] for row in d]

    ps, pt = psi(es), psi(et)
    B = es.shape[0]
    return sum(huber(ps[i][j] - pt[i][j]) for i in range(B) for j in range(B)) / (B * B)


def ref_rkd_angle(es: torch.Tensor, et: torch.Tensor) -> float:
    def cosines(e):
        B, D = e.shape
        out = {}
        for i in range(B):
            for j in range(B):
                for k in range(B):
                    u = [float(e[i, d] - e[j, d]) for d in range(D)]
                    v = [float(e[k, d] - e[j, d]) for d in range(D)]
                    nu, nv = norm(u), norm(v)
                    out[i, j, k] = 0.0 if nu == 0 or nv == 0 else sum(x * y for x, y in zip(u, v)) / (nu * nv)
        return out

    cs, ct = cosines(es), cosines(et)
    return sum(huber(cs[key] - ct[key]) for key in cs) / len(cs)


def ref_sp(fs: torch.Tensor, ft: torch.Tensor) -> float:
    B = fs.shape[0]

    def gram(f):
        f = f.reshape(B, -1)
        g = [[sum(float(f[i, d] * f[j, d]) for d in range(f.shape[1])) for j in range(B)] for i in range(B)]
        return [[x / norm(row) for x in row] for row in g]

    gs, gt = gram(fs), gram(ft)
    return sum((gs[i][j] - gt[i][j]) ** 2 for i in range(B) for j in range(B)) / (B * B)


def kl(p: list[float], q: list[float]) -> float:
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q) if pi > 0)


def ref_dkd(s: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float, T: float) -> float:
    B, C = s.shape
    tckd = nckd = 0.0
    for b in range(B):
        y = int(labels[b])
        ps = softmax([float(x) / T for x in s[b]])
        pt = softmax([float(x) / T for x in t[b]])
        tckd += kl([pt[y], 1 - pt[y]], [ps[y], 1 - ps[y]])
        qs = [ps[c] / (1 - ps[y]) for c in range(C) if c != y]  # non-target classes, renormalised
        qt = [pt[c] / (1 - pt[y]) for c in range(C) if c != y]
        nckd += kl(qt, qs)
    return (alpha * tckd + beta * nckd) / B * T * T


def ref_contrastive(es: torch.Tensor, et: torch.Tensor, tau: float) -> float:
    B = es.shape[0]
    s = [[float(x) / norm([float(y) for y in row]) for x in row] for row in es]
    t = [[float(x) / norm([float(y) for y in row]) for x in row] for row in et]
    total = 0.0
    for i in range(B):
        logits = [sum(a * b for a, b in zip(s[i], t[j])) / tau for j in range(B)]
        total += -math.log(softmax(logits)[i])
    return total / B


def ref_cosine(fs: torch.Tensor, ft: torch.Tensor) -> float:
    B = fs.shape[0]
    total = 0.0
    for i in range(B):
        a, b = [float(x) for x in fs[i].flatten()], [float(x) for x in ft[i].flatten()]
        total += 1.0 - sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))
    return total / B


# ----------------------------------------------------------------------------- values vs references
def test_fitnet_matches_direct_mse():
    s, t = randn(2, 3, 2, 2, seed=1), randn(2, 3, 2, 2, seed=2)
    expected = sum((float(a) - float(b)) ** 2 for a, b in zip(s.flatten(), t.flatten())) / s.numel()
    assert fitnet_loss(s, t).item() == pytest.approx(expected, rel=1e-10)


def test_cosine_matches_direct_and_ignores_length():
    s, t = randn(3, 2, 2, 2, seed=40), randn(3, 2, 2, 2, seed=41)
    assert cosine_loss(s, t).item() == pytest.approx(ref_cosine(s, t), rel=1e-10)
    scale = torch.tensor([0.1, 5.0, 30.0], dtype=DT).reshape(3, 1, 1, 1)
    assert cosine_loss(s * scale, t).item() == pytest.approx(ref_cosine(s, t), rel=1e-10)  # per-sample lengths
    assert cosine_loss(-t, t).item() == pytest.approx(2.0, rel=1e-10)  # opposite directions: 1 − (−1)


def test_attention_map_matches_direct():
    f = randn(2, 3, 2, 3, seed=3)
    am = attention_map(f)
    assert am.shape == (2, 6)
    for got, exp in zip(am.tolist(), ref_attention(f)):
        assert got == pytest.approx(exp, rel=1e-10)


def test_at_loss_matches_direct_same_size_and_different_channels():
    fs, ft = randn(2, 3, 3, 3, seed=4), randn(2, 5, 3, 3, seed=5)
    assert at_loss(fs, ft).item() == pytest.approx(ref_at(fs, ft), rel=1e-10)


@pytest.mark.parametrize("student_larger", [True, False])
def test_at_loss_pools_the_larger_map_down(student_larger):
    big, small = randn(2, 3, 4, 4, seed=6), randn(2, 2, 2, 2, seed=7)
    fs, ft = (big, small) if student_larger else (small, big)
    ps, pt = (block_mean(big, 2), small) if student_larger else (small, block_mean(big, 2))
    assert at_loss(fs, ft).item() == pytest.approx(ref_at(ps, pt), rel=1e-10)


def test_rkd_distance_matches_direct_with_different_dims():
    es, et = randn(5, 3, seed=8), randn(5, 4, seed=9)
    assert rkd_distance_loss(es, et).item() == pytest.approx(ref_rkd_distance(es, et), rel=1e-8)


def test_rkd_distance_flattens_feature_maps():
    es, et = randn(4, 2, 2, 1, seed=10), randn(4, 3, seed=11)
    assert rkd_distance_loss(es, et).item() == pytest.approx(ref_rkd_distance(es.reshape(4, -1), et), rel=1e-8)


def test_rkd_angle_matches_direct():
    es, et = randn(4, 3, seed=12), randn(4, 2, seed=13)
    assert rkd_angle_loss(es, et).item() == pytest.approx(ref_rkd_angle(es, et), rel=1e-8)


def test_rkd_angle_only_uses_first_max_batch_samples():
    b = RKD_ANGLE_MAX_BATCH + 6
    es, et = randn(b, 3, seed=14), randn(b, 3, seed=15)
    es2 = es.clone()
    es2[RKD_ANGLE_MAX_BATCH:] = 100.0  # samples past the cap must not matter
    assert rkd_angle_loss(es, et).item() == pytest.approx(rkd_angle_loss(es2, et).item(), abs=1e-12)
    es3 = es.clone()
    es3[0] = 100.0  # ...while samples inside it do
    assert rkd_angle_loss(es3, et).item() != pytest.approx(rkd_angle_loss(es, et).item())


def test_sp_matches_direct_with_different_shapes():
    fs, ft = randn(3, 2, 2, 2, seed=16), randn(3, 5, seed=17)
    assert sp_loss(fs, ft).item() == pytest.approx(ref_sp(fs, ft), rel=1e-10)


@pytest.mark.parametrize("alpha,beta,T", [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0), (2.0, 0.0, 2.5)])
def test_dkd_matches_direct(alpha, beta, T):
    s, t = randn(3, 5, seed=18) * 3, randn(3, 5, seed=19) * 3
    labels = torch.tensor([0, 4, 2])
    assert dkd_loss(s, t, labels, alpha, beta, T).item() == pytest.approx(
        ref_dkd(s, t, labels, alpha, beta, T), rel=1e-9
    )


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_dkd_recovers_classic_kd_for_one_sample(T):
    s, t = randn(1, 6, seed=20) * 2, randn(1, 6, seed=21) * 2
    label = 3
    z = [float(x) / T for x in t[0]]
    p_target = math.exp(z[label]) / sum(math.exp(x) for x in z)
    dkd = dkd_loss(s, t, torch.tensor([label]), alpha=1.0, beta=1.0 - p_target, T=T)
    assert dkd.item() == pytest.approx(kd_loss(s, t, T).item(), abs=1e-5)


def test_contrastive_matches_direct():
    es, et = randn(4, 3, seed=22), randn(4, 3, seed=23)
    assert contrastive_loss(es, et, 0.2).item() == pytest.approx(ref_contrastive(es, et, 0.2), rel=1e-10)


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("scale_student", [True, False])
def test_at_invariant_to_positive_scaling(scale_student):
    fs, ft = randn(2, 3, 4, 4, seed=24), randn(2, 4, 4, 4, seed=25)
    base = at_loss(fs, ft).item()
    scaled = at_loss(fs * 7.5, ft) if scale_student else at_loss(fs, ft * 0.03)
    assert scaled.item() == pytest.approx(base, rel=1e-9)


def test_rkd_distance_invariant_to_scaling():
    es, et = randn(6, 4, seed=26), randn(6, 5, seed=27)
    base = rkd_distance_loss(es, et).item()
    assert rkd_distance_loss(es * 12.0, et).item() == pytest.approx(base, rel=1e-9)
    assert rkd_distance_loss(es, et * 0.05).item() == pytest.approx(base, rel=1e-9)


def method_loss(name: str, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A registered method's loss on student/teacher tensors ``[4, ...]``, as the objective calls it."""
    m = METHODS[name]
    if m.on_logits:
        return m.loss(s.flatten(1), t.flatten(1), torch.tensor([0, 1, 2, 3]), 4.0)
    adapter = m.adapter(tuple(s.shape[1:]), tuple(t.shape[1:])).to(DT) if m.adapter else torch.nn.Identity()
    return m.loss(adapter(s), t)


# CRD's in-batch negatives keep its loss above 0 even for equal embeddings (tested on its own below)
ZERO_WHEN_EQUAL = [name for name in METHODS if name != "crd"]


@pytest.mark.parametrize("name", ZERO_WHEN_EQUAL)
def test_loss_is_zero_when_student_equals_teacher(name):
    f = randn(4, 3, 2, 2, seed=28)
    assert method_loss(name, f.clone(), f.clone()).item() == pytest.approx(0.0, abs=1e-10)


def test_contrastive_with_identical_embeddings():
    e = randn(4, 3, seed=29)
    tau = 0.1
    same = contrastive_loss(e.clone(), e.clone(), tau).item()
    assert same == pytest.approx(ref_contrastive(e, e, tau), rel=1e-10)
    assert same > 0  # other in-batch samples still carry probability mass
    assert same < contrastive_loss(randn(4, 3, seed=30), e, tau).item()


@pytest.mark.parametrize("name", list(METHODS))
def test_gradients_reach_student_only(name):
    s = randn(4, 3, 2, 2, seed=31).requires_grad_(True)
    t = randn(4, 3, 2, 2, seed=32).requires_grad_(True)
    method_loss(name, s, t).backward()
    assert t.grad is None
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_contrastive_gradients_reach_student_only():
    s, t = randn(4, 3, seed=33).requires_grad_(True), randn(4, 3, seed=34).requires_grad_(True)
    contrastive_loss(s, t, 0.5).backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0


def test_dkd_finite_for_extreme_logits():
    s = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, -1000.0]], requires_grad=True)
    t = torch.tensor([[-1000.0, 1000.0, 0.0], [1000.0, -1000.0, 1000.0]])
    for T in (1.0, 4.0):
        loss = dkd_loss(s, t, torch.tensor([0, 1]), 1.0, 8.0, T)
        (grad,) = torch.autograd.grad(loss, s)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        assert loss.item() > 0


# ----------------------------------------------------------------------------- bad input
def test_at_rejects_vectors():
    with pytest.raises(ValueError, match=r"spatial feature maps \[B, C, H, W\].*\(4, 8\)"):
        at_loss(randn(4, 8), randn(4, 8))
    with pytest.raises(ValueError, match=r"spatial feature maps"):
        attention_map(randn(4, 8))


@pytest.mark.parametrize(
    "call",
    [
        lambda: fitnet_loss(randn(4, 3), randn(5, 3)),
        lambda: cosine_loss(randn(4, 3), randn(5, 3)),
        lambda: at_loss(randn(4, 2, 3, 3), randn(5, 2, 3, 3)),
        lambda: rkd_distance_loss(randn(4, 3), randn(5, 3)),
        lambda: rkd_angle_loss(randn(4, 3), randn(5, 3)),
        lambda: sp_loss(randn(4, 3), randn(5, 3)),
        lambda: dkd_loss(randn(4, 3), randn(5, 3), torch.zeros(4, dtype=torch.long), 1.0, 1.0, 1.0),
        lambda: contrastive_loss(randn(4, 3), randn(5, 3), 0.1),
    ],
)
def test_mismatched_batch_raises_naming_shapes(call):
    with pytest.raises(ValueError, match=r"\(4, .*\(5, "):
        call()


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        fitnet_loss(randn(2, 3), randn(2, 4))  # FitNets needs the regressed student: exact shapes
    with pytest.raises(ValueError, match="shape"):
        contrastive_loss(randn(4, 3), randn(4, 5), 0.1)
    with pytest.raises(ValueError, match="at least 2"):
        rkd_distance_loss(randn(1, 3), randn(1, 3))


@pytest.mark.parametrize("tau", [0.0, -0.5, float("nan"), float("inf")])
def test_contrastive_rejects_bad_tau(tau):
    with pytest.raises(ValueError, match="tau"):
        contrastive_loss(randn(4, 3), randn(4, 3), tau)


@pytest.mark.parametrize("bad", [5, -1, HIDDEN_LABEL])
def test_dkd_rejects_out_of_range_labels(bad):
    with pytest.raises(ValueError, match=rf"\[0, 4\].*{bad}"):
        dkd_loss(randn(2, 5), randn(2, 5), torch.tensor([0, bad]), 1.0, 8.0, 4.0)


def test_dkd_rejects_bad_hyperparameters():
    s, t, y = randn(2, 5), randn(2, 5, seed=1), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="temperature"):
        dkd_loss(s, t, y, 1.0, 8.0, 0.0)
    with pytest.raises(ValueError, match="beta"):
        dkd_loss(s, t, y, 1.0, -1.0, 4.0)


# ----------------------------------------------------------------------------- regressors
@pytest.mark.parametrize(
    "s_shape,t_shape,kind",
    [
        ((2, 8, 4, 4), (2, 16, 4, 4), torch.nn.Conv2d),
        ((2, 8, 8, 8), (2, 16, 4, 4), torch.nn.Sequential),
        ((2, 8, 2, 2), (2, 8, 4, 4), torch.nn.Sequential),
        ((2, 10), (2, 6), torch.nn.Linear),
        ((2, 8, 4, 4), (2, 8, 4, 4), torch.nn.Identity),
        ((2, 10), (2, 10), torch.nn.Identity),
    ],
)
def test_make_regressor_maps_student_to_teacher_shape(s_shape, t_shape, kind):
    reg = make_regressor(s_shape, t_shape)
    assert isinstance(reg, kind)
    x = torch.randn(*s_shape, generator=gen(35), requires_grad=True)
    out = reg(x)
    assert out.shape == t_shape
    fitnet_loss(out, torch.randn(*t_shape, generator=gen(36))).backward()  # shapes now compare exactly
    assert x.grad is not None


@pytest.mark.parametrize("s_shape,t_shape", [((2, 8, 4, 4), (2, 16)), ((2, 16), (2, 8, 4, 4))])
def test_make_regressor_rejects_map_vs_vector(s_shape, t_shape):
    with pytest.raises(ValueError, match=r"map.*vector.*\(2, .*\(2, "):
        make_regressor(s_shape, t_shape)


# ----------------------------------------------------------------------------- divergences (reverse KL, JS, MSE on logits)
def ref_divergence(s: torch.Tensor, t: torch.Tensor, T: float, kind: str, beta: float = 0.5) -> float:
    """Plain-python mean over samples of each divergence (KL family × T²; MSE: mean over classes)."""
    total = 0.0
    for b in range(s.shape[0]):
        zs, zt = [float(x) for x in s[b]], [float(x) for x in t[b]]
        ps, pt = softmax([x / T for x in zs]), softmax([x / T for x in zt])
        if kind == "reverse_kl":
            total += T * T * sum(q * math.log(q / p) for p, q in zip(pt, ps))
        elif kind == "js":
            m = [beta * p + (1 - beta) * q for p, q in zip(pt, ps)]
            total += T * T * (beta * sum(p * math.log(p / mm) for p, mm in zip(pt, m))
                              + (1 - beta) * sum(q * math.log(q / mm) for q, mm in zip(ps, m)))
        else:
            total += sum((a - c) ** 2 for a, c in zip(zs, zt)) / len(zs)
    return total / s.shape[0]


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_divergences_match_direct(T):
    from kdviz.methods.divergences import js_loss, mse_logits_loss, reverse_kl_loss
    s, t = randn(5, 7, seed=40) * 2, randn(5, 7, seed=41) * 3
    assert reverse_kl_loss(s, t, T).item() == pytest.approx(ref_divergence(s, t, T, "reverse_kl"), rel=1e-9)
    for beta in (0.5, 0.2, 0.9):
        assert js_loss(s, t, T, beta).item() == pytest.approx(ref_divergence(s, t, T, "js", beta), rel=1e-9)
    assert mse_logits_loss(s, t, T).item() == pytest.approx(ref_divergence(s, t, T, "mse"), rel=1e-12)


def test_registered_divergence_terms_use_their_losses():
    s, t, y = randn(3, 4, seed=42), randn(3, 4, seed=43), torch.tensor([0, 1, 2])
    assert METHODS["reverse_kl"].loss(s, t, y, 2.0).item() == pytest.approx(ref_divergence(s, t, 2.0, "reverse_kl"), rel=1e-9)
    assert METHODS["js"].loss(s, t, y, 2.0).item() == pytest.approx(ref_divergence(s, t, 2.0, "js", 0.5), rel=1e-9)
    assert METHODS["mse_logits"].loss(s, t, y, 2.0).item() == pytest.approx(ref_divergence(s, t, 1.0, "mse"), rel=1e-12)
    assert all(METHODS[m].on_logits for m in ("reverse_kl", "js", "mse_logits"))


def test_js_term_takes_its_beta_from_the_term():
    from kdviz.methods import DistillConfig, Objective, Term
    from kdviz.methods.objective import bind_terms

    s, t, y = randn(3, 4, seed=46), randn(3, 4, seed=47), torch.tensor([0, 1, 2])
    for beta in (None, 0.2, 0.9):
        terms = (Term("js", 1.0, param=beta),)
        bound, _ = bind_terms(terms, {}, {})
        weighted, raw = Objective(DistillConfig(T=2.0, alpha=0.5, terms=terms), bound)(s, {}, t, {}, y, 2.0, 0.5)
        assert raw["js"].item() == pytest.approx(ref_divergence(s, t, 2.0, "js", 0.5 if beta is None else beta), rel=1e-9)
        assert weighted["js"].item() == pytest.approx(0.5 * raw["js"].item(), rel=1e-12)  # a divergence takes alpha
    with pytest.raises(ValueError, match="beta must lie strictly between 0 and 1"):
        Term("js", 1.0, param=1.5)
    with pytest.raises(ValueError, match="kd takes no setting of its own"):
        Term("kd", 1.0, param=0.3)


def test_js_symmetric_at_half_and_bounded():
    from kdviz.methods.divergences import js_loss
    s, t = randn(4, 6, seed=44) * 50, randn(4, 6, seed=45) * 50
    assert js_loss(s, t, 1.0).item() == pytest.approx(js_loss(t, s, 1.0).item(), rel=1e-9)
    assert js_loss(s, t, 1.0).item() <= math.log(2) + 1e-9  # JS ≤ log 2 nats
    assert torch.isfinite(js_loss(s * 20, t * 20, 1.0))


@pytest.mark.parametrize("beta", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_js_rejects_beta_outside_open_interval(beta):
    from kdviz.methods.divergences import js_loss
    with pytest.raises(ValueError, match="beta"):
        js_loss(randn(2, 3), randn(2, 3, seed=1), 1.0, beta)


def test_per_class_contributions_sum_to_each_divergence():
    from kdviz.methods.divergences import per_class_contributions
    s, t, T = randn(6, seed=46), randn(6, seed=47) * 2, 3.0
    parts = per_class_contributions(s, t, T, 0.3)
    assert set(parts) == {"forward_kl", "reverse_kl", "js", "mse_logits"}
    assert sum(parts["forward_kl"]) == pytest.approx(kd_loss(s[None], t[None], T).item(), rel=1e-9)
    assert sum(parts["reverse_kl"]) == pytest.approx(ref_divergence(s[None], t[None], T, "reverse_kl"), rel=1e-9)
    assert sum(parts["js"]) == pytest.approx(ref_divergence(s[None], t[None], T, "js", 0.3), rel=1e-9)
    assert sum(parts["mse_logits"]) == pytest.approx(ref_divergence(s[None], t[None], T, "mse"), rel=1e-12)
    with pytest.raises(ValueError, match="shape"):
        per_class_contributions(randn(2, 6), randn(2, 6), T)


def test_divergences_reject_mismatched_logits():
    from kdviz.methods.divergences import reverse_kl_loss
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 5\)"):
        reverse_kl_loss(randn(4, 3), randn(4, 5), 1.0)
