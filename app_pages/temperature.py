"""Temperature lab: what softmax(z / T) does to a teacher's output, and a step-by-step KD loss calculator.

Runs inside the app (``app.py`` navigation) or alone: ``streamlit run app_pages/temperature.py``.
Every number shown comes from ``kdviz.losses`` at run time; none is hard-coded.
The temperature, the log-scale toggle and the test image live in the URL (``?T=8&log=true&img=42``),
so a link opens the same view.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

import pandas as pd
import streamlit as st
import torch

from kdviz import losses
from kdviz.calculator import (TUTORIAL_KD, TUTORIAL_LOGPROB0, TUTORIAL_RATIOS, TUTORIAL_TOTAL, parse_logits, tutorial_rows,
                              worked_example)
from kdviz.checkpoints import CheckpointError
from kdviz.engine import TrainConfig, make_model, run_to_end, train
from kdviz.evaluation import evaluate
from kdviz.images import ImageError, ImageLimits, enlarge, prepare_digit, to_pixels
from kdviz.models import ModelConfig
from kdviz.figures import divergence_contributions, probability_bars
from kdviz.lm.kd import BSV_DEFAULTS, bsv_worked_example, lengths_mask, parse_bsv
from kdviz.methods.divergences import per_class_contributions
from kdviz.ui.frame import data_source, get_bundle
from kdviz.ui.hosted import cap
from kdviz.experiments.recipes import DEFAULT_TEACHER
from kdviz.ui.teachers import current_teacher, load_model, summary_of
from kdviz.ui.text import md_text
from kdviz.ui.urlstate import sync_url, url_state

P = "temp_"  # session-state prefix of the URL-backed settings: temp_T, temp_log, temp_img
T_RANGE, T_DEFAULT = (0.5, 50.0), 4.0
CALC_DEFAULTS = {"calc_teacher": "2, 1, 0", "calc_student": "1.5, 0.5, 0", "calc_label": 0, "calc_T": 2.0, "calc_alpha": 0.5}
QUICK_STEPS = 300
# Examples the calculator can load: a classic lesson's logits, and a soft label given as probabilities
# (its logits are their logs, so at T = 1 the soft targets are exactly that label).
SOFT_LABEL = (0.05, 0.90, 0.05)
CALC_PRESETS = {
    "Default example": CALC_DEFAULTS,
    "Classic lesson: student [2.0, 5.0, 1.0], teacher [2.1, 5.8, 1.2], label 1":
        {"calc_teacher": "2.1, 5.8, 1.2", "calc_student": "2.0, 5.0, 1.0", "calc_label": 1},
    "Soft label dog/cat [0.05, 0.90, 0.05] (teacher logits = log p, T = 1)":
        {"calc_teacher": ", ".join(f"{math.log(v):.6f}" for v in SOFT_LABEL), "calc_student": "2.0, 5.0, 1.0",
         "calc_label": 1, "calc_T": 1.0},
}


# ----------------------------------------------------------------------------- teacher
@st.cache_resource(show_spinner="No teacher yet: training a quick MLP teacher for a few seconds…")
def _quick_teacher(source: str) -> tuple[torch.nn.Module, str]:
    bundle = get_bundle(source)
    cfg = ModelConfig("mlp", hidden=(256,))
    model = make_model(cfg, seed=0)
    train_cfg = TrainConfig(epochs=1000, max_steps=QUICK_STEPS, lr=2e-3, log_every=100)
    run_to_end(train(model, bundle.train, train_cfg, device="cpu"))
    acc = evaluate(model, bundle.test).accuracy
    return model.eval(), f"a quick {cfg.label()} trained here for {QUICK_STEPS} steps ({acc:.1%} test accuracy)"


def get_teacher() -> tuple[torch.nn.Module, str]:
    """The session's teacher, else the shipped default, else a quick one trained now; and a note saying which.

    The accuracy shown is the session's summary (measured by kdviz for an upload) or, for the shipped
    default, what kdviz recorded when it trained it; never a number read from an uploaded file."""
    session_path, session_summary = current_teacher()
    for path, who in ((session_path, "this session's teacher"), (str(DEFAULT_TEACHER), "the shipped default teacher")):
        if path and Path(path).is_file():
            try:
                model, cfg, _ = load_model(path)  # the server-wide cache, bounded in bytes
                acc = (session_summary if path == session_path else summary_of(path)).get("test_acc")
                return model, f"Teacher: {who}, {cfg.label()}" + (f", {acc:.2%} test accuracy." if isinstance(acc, float) else ".")
            except CheckpointError as err:
                st.warning(f"Could not load {who} ({md_text(err)}); falling back.")
    model, label = _quick_teacher(data_source())
    return model, f"No trained teacher found, so the teacher is {label}. Train a better one on the Teacher page."


# ----------------------------------------------------------------------------- URL
def url_schema(n_test: int, first: int) -> dict:
    """T, the log-scale toggle and the test image shown (its index: the range depends on the data set)."""
    return {"T": (float, T_DEFAULT, T_RANGE), "log": (bool, False), "img": (int, first, (0, max(0, n_test - 1)))}


def url_values(n_test: int) -> dict:
    """The current settings to write to the URL; an upload has no index, so ``img`` is then left out."""
    s = st.session_state
    img = s.get(P + "img")
    return {"T": float(s[P + "T"]), "log": bool(s[P + "log"]),
            **({"img": img} if isinstance(img, int) and 0 <= img < n_test else {})}


# ----------------------------------------------------------------------------- digit picker
def _gallery(y: torch.Tensor) -> list[int]:
    """Index of the first test image of each class present: one clickable example per digit."""
    return [int((y == c).nonzero()[0]) for c in range(10) if bool((y == c).any())]


def _choose(choice) -> None:
    st.session_state[P + "img"] = choice


def _pick_random(n: int) -> None:
    st.session_state[P + "img"] = random.randrange(n)


def digit_picker(test) -> tuple[torch.Tensor, str, int | None]:
    """Gallery buttons, a random button and an upload. Returns ``(x [1,1,28,28], caption, label or None)``."""
    gallery = _gallery(test.y)
    cols = st.columns(max(len(gallery), 1))
    for col, idx in zip(cols, gallery):
        col.image(enlarge(to_pixels(test.images(idx, idx + 1)), 2), width="stretch")  # decodes one image, not the set
        col.button(str(int(test.y[idx])), key=f"temp_pick_{idx}", on_click=_choose, args=(idx,), width="stretch")
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.button("Random", key="temp_random", icon=":material/casino:", on_click=_pick_random,
                args=(len(test),), width="stretch")
    max_bytes = cap("max_upload_bytes", 1_000_000)
    upload = right.file_uploader("…or upload a PNG/JPEG of a digit (any size or colours; it is centred like MNIST)",
                              type=["png", "jpg", "jpeg"], key="temp_upload", on_change=_choose, args=("upload",),
                              max_upload_size=max(1, math.ceil(max_bytes / 1e6)))
    choice = st.session_state[P + "img"]  # seeded from the URL by url_state
    if choice == "upload" and upload is not None:
        try:
            digit = prepare_digit(upload, ImageLimits(max_bytes=max_bytes))
            note = ", inverted to white-on-black" if digit.inverted else ""
            return digit.x, f"your upload ({digit.source_size[0]}×{digit.source_size[1]} {digit.source_format}{note})", None
        except ImageError as err:
            st.error(f"That upload cannot be used: {md_text(err)}")
    idx = choice if isinstance(choice, int) and 0 <= choice < len(test) else 0
    return test.images(idx, idx + 1), f"test image #{idx}", int(test.y[idx])


# ----------------------------------------------------------------------------- probabilities at T
def temperature_view(teacher: torch.nn.Module, x: torch.Tensor, caption: str, label: int | None) -> None:
    # no value=: the URL (through url_state) seeds temp_T and temp_log
    T = st.slider("Temperature T", *T_RANGE, step=0.5, key=P + "T",
                  help="softmax(z / T): T > 1 flattens the distribution, T < 1 sharpens it.")
    log = st.toggle("Log scale (makes the tiny probabilities — the dark knowledge — visible)", key=P + "log")
    with torch.no_grad():
        z = teacher(x.to(next(teacher.parameters()).device))[0][0].double().cpu()  # [C] raw logits
    p1, pT = losses.soft_targets(z, 1.0), losses.soft_targets(z, T)
    left, right = st.columns([1, 3])
    left.image(enlarge(to_pixels(x), 5), caption=caption + (f", label {label}" if label is not None else ""))
    left.metric("Entropy at T = 1", f"{float(losses.entropy(p1)):.3f} nats")
    left.metric(f"Entropy at T = {T:g}", f"{float(losses.entropy(pT)):.3f} nats",
                help=f"The maximum, log {len(z)} = {math.log(len(z)):.3f} nats, is a uniform distribution.")
    right.plotly_chart(probability_bars({"T = 1": p1, f"T = {T:g}": pT}, log=log), key="temp_chart", theme=None)
    top = int(p1.argmax())
    runner = sorted((c for c in range(len(z)) if c != top), key=lambda c: -float(p1[c]))[:3]
    right.caption(
        f"The teacher predicts **{top}** ({float(p1[top]):.2%} at T = 1). Runners-up (dark knowledge): "
        + ", ".join(f"**{c}**: {float(p1[c]):.2e} → {float(pT[c]):.2%} at T = {T:g}" for c in runner)
    )


# ----------------------------------------------------------------------------- worked example
def vec(t: torch.Tensor, digits: int = 4) -> str:
    """LaTeX row vector with ``digits`` decimals."""
    return r"\left[" + r",\ ".join(f"{float(v):.{digits}f}" for v in t) + r"\right]"


def show_steps(z_t, z_s, label: int, T: float, alpha: float, r: dict) -> None:
    st.markdown("**1. Soft targets** — divide the teacher's logits by T, then softmax:")
    st.latex(r"\begin{aligned} z_t / T &= " + vec(z_t / T) + r" \\ p = \mathrm{softmax}(z_t / T) &= " + vec(r["p"])
             + r" \end{aligned}")
    st.markdown("**2. Student log-probabilities at the same T** — `log_softmax`, never `log(softmax)`:")
    st.latex(r"\begin{aligned} z_s / T &= " + vec(z_s / T) + r" \\ \log q = \mathrm{log\_softmax}(z_s / T) &= "
             + vec(r["log_q"]) + r" \end{aligned}")
    st.markdown("**3. KL divergence**, one term per class, with the teacher's own log-probabilities "
                f"$\\log p = {vec(r['log_p'])}$:")
    st.latex(r"\begin{aligned} p_i(\log p_i - \log q_i) &= " + vec(r["terms"]) + r" \\ \mathrm{KL}(p\,\|\,q) = "
             r"\textstyle\sum_i p_i(\log p_i - \log q_i) &= " + f"{float(r['kl']):.6f}" + r" \end{aligned}")
    st.markdown("**4. Scale by T²** (keeps the soft term's gradients comparable across temperatures):")
    st.latex(rf"\mathrm{{KD}} = T^2\,\mathrm{{KL}} = {T:g}^2 \times {float(r['kl']):.6f} = {float(r['kd']):.4f}")
    st.markdown(f"**5. Cross-entropy with the label y = {label}** (at T = 1):")
    st.latex(rf"\mathrm{{CE}} = -\log \mathrm{{softmax}}(z_s)_{{{label}}} = {float(r['ce']):.4f}")
    st.markdown("**6. Total** — alpha weights the distillation term:")
    st.latex(rf"\mathcal{{L}} = \alpha\,\mathrm{{KD}} + (1-\alpha)\,\mathrm{{CE}} = {alpha:g} \times {float(r['kd']):.4f}"
             rf" + {1 - alpha:g} \times {float(r['ce']):.4f} = {float(r['total']):.4f}")
    c1, c2, c3 = st.columns(3)
    c1.metric("KD = T²·KL", f"{float(r['kd']):.4f}")
    c2.metric("CE", f"{float(r['ce']):.4f}")
    c3.metric("total", f"{float(r['total']):.4f}")
    st.caption("Computed in float64 by `kdviz.losses` (`soft_targets`, `kd_loss`, `ce_loss`, `distillation_loss`); "
               "shown rounded, so a rounded sum may differ from the sum of rounded terms in the last digit.")


def _load_preset(name: str) -> None:
    st.session_state.update(CALC_PRESETS[name])


def calculator() -> dict | None:
    """Inputs + all steps; returns the example's intermediates, or None after showing the error."""
    for key, value in CALC_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    cols = st.columns(len(CALC_PRESETS))
    for i, (col, name) in enumerate(zip(cols, CALC_PRESETS)):
        col.button(name, key=f"calc_preset_{i}", on_click=_load_preset, args=(name,), width="stretch")
    c1, c2 = st.columns(2)
    c1.text_input("Teacher logits z_t (comma-separated)", key="calc_teacher")
    c2.text_input("Student logits z_s (same number of classes)", key="calc_student")
    c3, c4, c5 = st.columns(3)
    c3.number_input("Label y (class index)", step=1, key="calc_label")
    c4.number_input("Temperature T", step=0.5, key="calc_T", format="%.4g")
    c5.number_input("alpha (weight of the KD term)", step=0.05, key="calc_alpha", format="%.4g")
    s = st.session_state
    try:
        z_t, z_s = parse_logits(s["calc_teacher"], "teacher logits"), parse_logits(s["calc_student"], "student logits")
        label, T, alpha = int(s["calc_label"]), float(s["calc_T"]), float(s["calc_alpha"])
        result = worked_example(z_t, z_s, label, T, alpha)
    except ValueError as err:
        st.error(f"Cannot compute the loss: {md_text(err)}")  # the message quotes what was typed
        return None
    show_steps(z_t, z_s, label, T, alpha, result)
    divergence_view(z_t, z_s, T)
    return {"z_t": z_t, "z_s": z_s, "T": T, **result}


def divergence_view(z_t: torch.Tensor, z_s: torch.Tensor, T: float) -> None:
    """The same logits under each divergence the Distill page offers, class by class."""
    st.markdown("**Other divergences, same logits.** KD uses the forward KL above; the Distill page also offers "
                "reverse KL (the student's distribution first: mode-seeking), Jensen–Shannon with a mixing weight β "
                "(bounded, symmetric at β = 0.5) and the mean squared error of the raw logits (no T). "
                "Each divergence's bars sum to its value (the KL family includes the T² factor).")
    beta = st.number_input("β (Jensen–Shannon mixing weight, strictly between 0 and 1)", value=0.5, step=0.1,
                           key="calc_beta", format="%.3g")
    try:
        parts = per_class_contributions(z_s, z_t, T, float(beta))
    except ValueError as err:
        st.error(f"Cannot compute the divergences: {md_text(err)}")
        return
    st.plotly_chart(divergence_contributions(parts, "Per-class contribution of each divergence"),
                    key="calc_divergences_chart", theme=None)


# ----------------------------------------------------------------------------- [B, S, V]
def sequence_calculator() -> None:
    """The KD term over sequences ``[B, S, V]`` with padding: batchmean vs per-token means, step by step."""
    with st.expander("Sequences: logits [B, S, V] with padding — batchmean vs per-token mean"):
        for key, value in BSV_DEFAULTS.items():
            st.session_state.setdefault(f"bsv_{key}", value)
        st.caption("`|` separates sequences, `;` positions, `,` classes. Positions past a sequence's length are padding.")
        c1, c2, c3 = st.columns([3, 3, 1])
        c1.text_input("Teacher logits", key="bsv_teacher")
        c2.text_input("Student logits", key="bsv_student")
        c3.text_input("Lengths", key="bsv_lengths")
        T = float(st.session_state.get("calc_T", 2.0))
        try:
            z_t, z_s = parse_bsv(st.session_state["bsv_teacher"], "teacher logits"), parse_bsv(st.session_state["bsv_student"], "student logits")
            mask = lengths_mask(st.session_state["bsv_lengths"], z_t.shape[0], z_t.shape[1])
            r = bsv_worked_example(z_s, z_t, mask, T)
        except ValueError as err:
            st.error(f"Cannot compute: {err}")
            return
        show_bsv_steps(r, T)


def show_bsv_steps(r: dict, T: float) -> None:
    table = pd.DataFrame([[f"{v:.4f}" + ("" if keep else " (padding)") for v, keep in zip(row, keeps)]
                          for row, keeps in zip(r["per_position"], r["mask"])],
                         index=[f"sequence {b + 1}" for b in range(r["B"])], columns=[f"position {i + 1}" for i in range(len(r["mask"][0]))])
    st.markdown(f"**Step 1.** KL(teacher ‖ student)·T² at every position (T = {T:g}, the calculator's T):")
    st.dataframe(table, key="bsv_table")
    st.markdown(f"**Step 2.** Sum over all {r['positions']} positions = {r['total']:.4f}; over the {r['counted']} real ones "
                f"= {r['masked_token_mean'] * r['counted']:.4f}.")
    c = st.columns(3)
    c[0].metric("batchmean: sum ÷ B", f"{r['batchmean']:.4f}", help=f"F.kl_div(reduction='batchmean'): {r['total']:.4f} ÷ {r['B']}")
    c[1].metric("per-token mean: sum ÷ (B·S)", f"{r['token_mean']:.4f}", help="padding counted")
    c[2].metric("masked per-token mean (right)", f"{r['masked_token_mean']:.4f}", help=f"÷ {r['counted']} real positions")
    st.caption(f"batchmean is {r['batchmean'] / r['masked_token_mean']:.2f}× the right value here: it scales with the "
               "sequence length and includes padding, so alpha no longer weights KD against CE as intended.")


# ----------------------------------------------------------------------------- notes
def tutorial_note() -> None:
    """Where a widely copied tutorial's hand-annotated 0.0153 / 0.2399 (for the default example) goes wrong."""
    d = CALC_DEFAULTS
    z_t, z_s = parse_logits(d["calc_teacher"], "teacher logits"), parse_logits(d["calc_student"], "student logits")
    T, alpha = d["calc_T"], d["calc_alpha"]
    r = worked_example(z_t, z_s, d["calc_label"], T, alpha)
    rows = tutorial_rows(r, T, alpha)
    lowest = min(row.pop("_kd") for row in rows[1:3])  # the smallest KD a rounding variant gives
    for row in rows:
        row.pop("_kd", None)
    ratios = r["log_p"] - r["log_q"]
    gap = float(ratios[0]) - TUTORIAL_RATIOS[0]  # the same for every class
    ce4 = round(float(r["ce"]), 4)
    told, exact = ", ".join(f"{v:.4f}" for v in TUTORIAL_RATIOS), ", ".join(f"{float(v):.4f}" for v in ratios)
    with st.expander("Why a widely copied tutorial gets 0.0153 and 0.2399 for this example (and why they are wrong)"):
        st.markdown(
            f"For the default inputs the tutorial writes the per-class log-ratios log pᵢ − log qᵢ as "
            f"**{told}**, the KD term as **{TUTORIAL_KD}** and the total as "
            f"**{TUTORIAL_TOTAL}**. The exact log-ratios are {exact}, so KD = "
            f"{float(r['kd']):.4f} and the total is {float(r['total']):.4f}. Recomputed live:")
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        st.markdown(
            f"- **The slip is in the log-ratios, not in the sum.** With its own log-ratios and its 4-decimal p, the "
            f"three KL terms add up to {rows[3]['KL = Σ']}, and T² × that is {rows[3]['KD = T²·KL']}: exactly its "
            f"{TUTORIAL_KD}. The addition is right.\n"
            f"- **Each log-ratio is {gap:.4f} too small.** Since Σpᵢ = 1, lowering every log-ratio by the same amount c "
            f"lowers the KL by exactly c: {float(r['kl']):.6f} − {gap:.6f} = {float(r['kl']) - gap:.6f}, and "
            f"×{T * T:g} gives {T * T * (float(r['kl']) - gap):.4f} ≈ {TUTORIAL_KD}.\n"
            f"- **Rounding explains little.** Its log q₀ = {TUTORIAL_LOGPROB0} is {abs(TUTORIAL_LOGPROB0 - float(r['log_q'][0])):.4f} "
            f"off the exact {float(r['log_q'][0]):.5f}; even with every log q off by that much, KD only drops to {lowest:.4f}.\n"
            f"- **The last line is consistent with the wrong KD:** {alpha:g} × {TUTORIAL_KD} + {1 - alpha:g} × {ce4} "
            f"= {alpha * TUTORIAL_KD + (1 - alpha) * ce4:.5f} ≈ {TUTORIAL_TOTAL}, so the error is entirely in the KD term; "
            f"the correct total is {float(r['total']):.4f}.\n"
            "- Lesson: let the library compute the numbers (here `kdviz.losses`), and test hand annotations against it.")


def why_log_softmax() -> None:
    with st.expander("Why log_softmax and not log(softmax(z))?"):
        st.markdown(
            "`softmax` of a very confident logit vector underflows: in float32, e^(−1000) is exactly 0, so "
            "`log(softmax(z))` gives −inf, and a KL term 0 · (−inf) is NaN. `log_softmax` computes "
            "z − logsumexp(z) directly and stays finite. `kdviz.losses.kd_loss` uses `log_softmax` on both sides.")
        if st.toggle("Show it live (float32)", key="temp_stability"):
            text = st.text_input("Logits", "1000, -1000, 0", key="temp_stab_logits")
            try:
                z = parse_logits(text, "logits").float()
            except ValueError as err:
                st.error(md_text(err))
                return
            naive, stable = torch.log(torch.softmax(z, -1)), torch.log_softmax(z, -1)
            p = torch.softmax(z, -1)
            st.dataframe(pd.DataFrame({"class": range(len(z)), "logit": z.tolist(), "softmax": p.tolist(),
                                       "log(softmax(z))": naive.tolist(), "log_softmax(z)": stable.tolist()}),
                         hide_index=True)
            c1, c2 = st.columns(2)
            c1.metric("KL(p ‖ p) via log(softmax)", f"{float((p * (naive - naive)).sum()):.4g}", help="should be exactly 0")
            c2.metric("KL(p ‖ p) via log_softmax", f"{float((p * (stable - stable)).sum()):.4g}")


def why_t_squared(example: dict | None) -> None:
    with st.expander("Why multiply by T²?"):
        st.markdown(
            "The gradient of KL(softmax(z_t/T) ‖ softmax(z_s/T)) with respect to the student's logits is "
            "(q − p) / T, and for large T both p and q approach uniform with q − p ≈ (z_s − z_t) / (C·T), so the gradient "
            "shrinks like 1/T² (Hinton et al. 2015, §2 and §2.1). Multiplying by T² keeps the soft term's pull comparable "
            "when you change T, so alpha keeps its meaning. Live, for the calculator's logits:")
        z_t = example["z_t"] if example else parse_logits(CALC_DEFAULTS["calc_teacher"], "teacher logits")
        z_s = example["z_s"] if example else parse_logits(CALC_DEFAULTS["calc_student"], "student logits")
        rows = []
        for T in (1, 2, 4, 8, 16, 32):
            s = z_s.clone().requires_grad_(True)
            kd = losses.kd_loss(s[None], z_t[None], T)  # = T² · KL
            (grad,) = torch.autograd.grad(kd, s)
            rows.append({"T": T, "‖∇ KL‖ (shrinks ~1/T²)": float(grad.norm()) / T**2,
                         "‖∇ T²·KL‖ (levels off)": float(grad.norm())})
        frame = pd.DataFrame(rows)
        st.dataframe(frame.style.format({c: "{:.3e}" for c in frame.columns[1:]}), hide_index=True)


# ----------------------------------------------------------------------------- page
def main() -> None:
    st.title(":material/thermostat: Temperature lab")
    st.caption("Soft targets p = softmax(z / T) (Hinton, Vinyals & Dean 2015): a higher temperature reveals how "
               "the teacher ranks the wrong classes — the 'dark knowledge' a student can learn from.")
    bundle = get_bundle(data_source())
    n_test = len(bundle.test)
    gallery = _gallery(bundle.test.y)
    schema = url_schema(n_test, gallery[0] if gallery else 0)
    url_state(schema, P)  # a bad ?T=… shows a warning naming T and its range, and the default is used
    teacher, note = get_teacher()
    st.caption(note)
    st.subheader("1 · Pick a digit")
    x, caption, label = digit_picker(bundle.test)
    st.subheader("2 · The teacher's probabilities at T = 1 and at T")
    temperature_view(teacher, x, caption, label)
    st.divider()
    st.subheader("3 · Worked example: the distillation loss, step by step")
    st.caption("Edit any input; any number of classes ≥ 2 works. Defaults: teacher [2, 1, 0], student [1.5, 0.5, 0], "
               "label 0, T = 2, alpha = 0.5.")
    example = calculator()
    sequence_calculator()
    tutorial_note()
    why_log_softmax()
    why_t_squared(example)
    sync_url(schema, P, url_values(n_test))


main()
