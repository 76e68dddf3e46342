"""The interview question cards (no Streamlit): question, answer, and where each idea can be seen live.

Each card links to page elements as ``(page file under app_pages/, widget key)``: the page opens on
that widget (``tests/test_app_interview.py`` runs each page and asks for the key). A key of ``""``
means the page as a whole (the language-model lab, ``lm.py``, which another branch adds).
"""
from __future__ import annotations

from dataclasses import dataclass

PAGE_TITLES = {
    "temperature.py": "Temperature lab", "teacher.py": "Teacher", "distill.py": "Distill",
    "feature_maps.py": "Feature maps", "experiments.py": "Experiments", "runs.py": "Saved runs",
    "lm.py": "Language-model lab", "catalogue.py": "Self-distillation & ensembles", "interview.py": "Interview prep", "lesson.py": "Lesson",
}


@dataclass(frozen=True)
class Card:
    question: str
    answer: str  # markdown
    links: tuple[tuple[str, str], ...]  # (page file, widget key) that show it live, best first
    topic: str


CARDS = (
    Card("Why divide the logits by a temperature T > 1?",
         "A well-trained teacher puts almost all its probability on one class at T = 1; the wrong classes get "
         "10⁻⁶…10⁻¹⁰ and contribute next to nothing to the loss, although *their ratios* say which classes the teacher "
         "finds similar. softmax(z / T) with T > 1 flattens the distribution so those ratios become visible to the "
         "student. Too high a T makes everything uniform; in the limit, KD becomes matching the (zero-meaned) logits. "
         "Hinton et al. found all T above 8 similar for students with 300+ units per layer, and T ≈ 2.5–4 best for "
         "a 30-unit student. Teacher and student use the *same* T during training; the student is used at T = 1.",
         (("temperature.py", "temp_T"),), "temperature"),
    Card("Why is the soft-target loss multiplied by T²?",
         "The gradient of KL(softmax(t/T) ‖ softmax(s/T)) with respect to the student logits is (q − p)/T, and as T "
         "grows q − p itself shrinks like 1/T, so the gradient scales as 1/T². Multiplying by T² keeps the soft term's "
         "pull comparable across temperatures, so changing T does not silently re-weight it against the hard-label "
         "cross-entropy (Hinton et al. 2015, §2).",
         (("temperature.py", "calc_T"),), "temperature"),
    Card("Why log_softmax instead of log(softmax(z))?",
         "Numerical stability. For confident logits such as [1000, −1000, 0], softmax underflows to exact zeros in "
         "float32, log(0) = −inf, and a KL term 0·(−inf) is NaN — training dies. log_softmax computes "
         "z − logsumexp(z) directly and stays finite. Related trap: PyTorch's `F.kl_div(input, target)` expects "
         "*log*-probabilities as input, and `reduction='mean'` divides by B·C — use `'batchmean'` for the true KL.",
         (("temperature.py", "temp_stability"),), "temperature"),
    Card("What does alpha mean here, and what is the opposite convention?",
         "In kdviz, alpha weights the **distillation** term: total = α·T²·KL + (1 − α)·CE, so α = 0 is plain training "
         "and α = 1 is pure imitation. Many tutorials and libraries write it the other way round, "
         "α·CE + (1 − α)·KD. Neither is wrong, but copying an α between codebases without checking which term it "
         "multiplies flips the recipe. Always read the formula, not the variable name.",
         (("distill.py", "distill_alpha"), ("temperature.py", "calc_alpha")), "temperature"),
    Card("What is 'dark knowledge'?",
         "The information in the teacher's probabilities for the *wrong* classes: a 2 that is 10⁻⁶ likely a 3 and "
         "10⁻⁹ likely a 7 says 2s resemble 3s more than 7s. Hard labels carry none of it. Hinton et al.'s evidence: a "
         "student distilled on a transfer set with **no 3s at all** still recognised most test 3s once the bias of "
         "class 3 was raised — it learned what a 3 is from how the teacher's outputs for other digits leaned toward 3.",
         (("temperature.py", "temp_log"), ("experiments.py", "exp_kind")), "temperature"),
    Card("What must match between the teacher's and the student's outputs?",
         "The output space: the same number of classes **in the same order** (for language models the same "
         "tokenizer and vocabulary, with positions aligned). The soft targets must come from **logits** "
         "(log-probabilities also work, since softmax ignores a per-row constant) — never from probabilities, because "
         "softmax(p / T) of probabilities is not the teacher's tempered distribution. Both networks must also see the "
         "same input for each example (same preprocessing, same augmentation). A shape mismatch must be an error, "
         "never a silent broadcast.",
         (("temperature.py", "calc_teacher"), ("distill.py", "distill_transfer")), "temperature"),
    Card("Can a student beat its teacher? When?",
         "Yes, in several documented cases: when the student is as large as the teacher (born-again networks, "
         "Furlanello et al. 2018), when the teacher is an ensemble or overfitted and the soft targets act as a "
         "regulariser, when the student also sees the true labels (the CE term corrects the teacher's mistakes), or "
         "when the student gets more data or training. A much smaller student on the same data usually stays below "
         "a strong teacher. Claims either way need several seeds: differences of a few tenths of a percent on MNIST "
         "are often within noise.",
         (("experiments.py", "exp_seeds"), ("distill.py", "distill_alpha")), "methods"),
    Card("Feature distillation vs logit distillation?",
         "Logit (response) KD matches output distributions only: it works between any two architectures with the same "
         "output space and costs one KL. Feature KD matches intermediate representations — FitNets regress student "
         "features onto the teacher's (a learned adapter), attention transfer matches *where* CNN stages respond, "
         "RKD/SP match the geometry *between* samples (so dimensions may differ), CRD contrasts embeddings. They need "
         "layer choices, shape adapters and loss weights, and are usually added *on top of* logit KD.",
         (("feature_maps.py", "fm_train"), ("distill.py", "distill_methods")), "methods"),
    Card("What does attention transfer compare, and why are the maps normalised?",
         "For a CNN stage f [C, H, W] the attention map is mean over channels of f², flattened and L2-normalised "
         "(Zagoruyko & Komodakis 2017). Summing over channels lets networks with different widths be compared; the "
         "normalisation removes their different activation scales, so only the spatial pattern counts. The spatial "
         "sizes must agree (pool the larger one). Differences between unit-norm maps are tiny, hence β = 1000. "
         "An MLP has no spatial maps, so AT does not apply to it.",
         (("feature_maps.py", "fm_train"),), "methods"),
    Card("Why cache the teacher's logits — and when can you not?",
         "The teacher is frozen, so if every epoch shows it the same inputs its logits never change: compute them once "
         "(MNIST: 60,000 × 10 floats, 2.4 MB) and skip the teacher's forward pass on every step. You cannot when the "
         "inputs change per step — random augmentation (shifts, crops, mixup): the teacher must see the *same* "
         "augmented image as the student — when a feature term needs the teacher's activations (unless you cache "
         "those too, far larger), when the teacher runs stochastically, or when it is still learning (mutual learning). "
         "For LLMs people cache only the top-k logits per token because V is 32k–256k.",
         (("distill.py", "distill_jitter"),), "practice"),
    Card("What does DKD (decoupled KD) decouple?",
         "Zhao et al. 2022 split the KD loss into TCKD — a binary KL on target vs. all non-target probability — and "
         "NCKD — a KL over the non-target classes only, renormalised. Classic KD equals TCKD + (1 − p_t)·NCKD with p_t "
         "the teacher's target probability, so the more confident the teacher, the more the dark knowledge (NCKD) is "
         "suppressed. DKD weights the two independently, α·TCKD + β·NCKD (e.g. α = 1, β = 8 on CIFAR-100).",
         (("distill.py", "distill_methods"),), "methods"),
    Card("What are born-again networks?",
         "Furlanello et al. 2018: distil a teacher into a student with the *same* architecture, then use that student "
         "as the next teacher, for several generations, optionally ensembling them. In the paper (CIFAR-100) the "
         "students often outperform the original teacher — evidence that KD is not only compression but also a "
         "regulariser. Measured in kdviz on MNIST (3 seeds, 5,000 images, 5 epochs) no generation beat generation 0 "
         "beyond noise: run it yourself and see where the gains stop.",
         (("catalogue.py", "cat_born_again_seeds"),), "methods"),
    Card("What is deep mutual learning?",
         "Zhang et al. 2018: no pre-trained teacher. Two (or more) networks train at the same time, each on "
         "cross-entropy plus a KL towards the other's current predictions; the paper reports both ending up better "
         "than when trained alone (CIFAR). Measured in kdviz on MNIST (3 seeds, 5,000 images) the peers matched "
         "their solo twins within noise. Because the 'teacher' changes every step, its outputs cannot be cached.",
         (("catalogue.py", "cat_mutual_seeds"),), "methods"),
    Card("Can you distil on unlabelled data?",
         "Yes: the soft-target term needs only the teacher's outputs, so the teacher labels the transfer set. "
         "Unlabelled examples contribute only the KD term (kdviz marks their label −100 and the CE term skips them). "
         "What matters is that the transfer set covers the inputs the student will meet; Hinton et al. also "
         "distilled with a transfer set from which a whole class had been removed.",
         (("distill.py", "distill_transfer"), ("experiments.py", "exp_kind")), "practice"),
    Card("How does KD work for language models?",
         "Token-level KD applies the same KL at every position: logits [B, S, V] with the vocabulary as the classes. "
         "Padding (and usually the prompt) must be **masked**, and the mean taken over the counted tokens — "
         "averaging over B·S lets padding dilute the loss. Teacher and student need the same tokenizer, or an "
         "alignment method. Alternatives: sequence-level KD (Kim & Rush 2016) trains on teacher-generated text, and "
         "reverse KL (e.g. MiniLLM) makes the student mode-seeking. `kdviz.losses.kd_loss` takes such a mask.",
         (("lm.py", ""), ("temperature.py", "calc_student")), "practice"),
    Card("How would you pick T and alpha in practice?",
         "Sweep them, with several seeds, on a validation set. Rules of thumb: T between 2 and 8 for small "
         "students (higher T for students with enough capacity), alpha high (0.5–0.9) when the teacher is much "
         "better than the student, lower when it is noisy or the transfer set is small. Thanks to the T² factor, "
         "alpha keeps roughly the same meaning when T changes. Check that the gain over a student trained from "
         "scratch (same seeds, same steps) is larger than the seed-to-seed spread.",
         (("distill.py", "distill_T"), ("experiments.py", "exp_sweep_param")), "practice"),
)


def matches(card: Card, query: str) -> bool:
    q = query.strip().lower()
    return not q or q in card.question.lower() or q in card.answer.lower()
