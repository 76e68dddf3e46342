"""kdviz.hf.DistillationTrainer on tiny, locally built Hugging Face models (nothing downloaded).

The loss is checked against a written-out reference (explicit loops over counted positions),
and a few real ``trainer.train()`` steps run on a 2-layer GPT-2 and a 2-layer DistilBERT.
"""
from __future__ import annotations

import ast
import importlib
import math
import pathlib
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="optional dependency: pip install -r requirements-optional.txt")
from transformers import (  # noqa: E402
    DistilBertConfig,
    DistilBertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    TrainingArguments,
)

from kdviz.hf import DistillationTrainer, distillation_terms, is_causal_lm  # noqa: E402

VOCAB, SEQ, T, ALPHA = 50, 8, 2.0, 0.3
ROOT = pathlib.Path(__file__).resolve().parent.parent


def gpt2(seed: int, vocab: int = VOCAB) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_positions=SEQ, n_embd=32, n_layer=2, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=vocab - 1, eos_token_id=vocab - 1)  # no dropout: train-mode logits are exact
    return GPT2LMHeadModel(cfg)


def distilbert(seed: int, num_labels: int = 2) -> DistilBertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = DistilBertConfig(vocab_size=VOCAB, max_position_embeddings=SEQ, dim=32, hidden_dim=64, n_layers=2,
                           n_heads=2, num_labels=num_labels, dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    return DistilBertForSequenceClassification(cfg)


def lm_examples(n: int = 6) -> list[dict[str, torch.Tensor]]:
    """Hand-built token ids; each row's tail is padding (label -100) of a different length."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        ids = torch.randint(0, VOCAB, (SEQ,), generator=g)
        labels = ids.clone()
        labels[SEQ - 1 - i % 3:] = -100
        rows.append({"input_ids": ids, "attention_mask": torch.ones(SEQ, dtype=torch.long), "labels": labels})
    return rows


def cls_examples(n: int = 6) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(0, VOCAB, (SEQ,), generator=g), "attention_mask": torch.ones(SEQ, dtype=torch.long),
             "labels": torch.tensor(i % 2)} for i in range(n)]


def batch(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def make_trainer(tmp_path, student, teacher, rows=None, **kw) -> DistillationTrainer:
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-2,
                             gradient_accumulation_steps=kw.pop("accumulate", 1), logging_steps=1, save_strategy="no",
                             report_to=[], use_cpu=True, disable_tqdm=True)
    return DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=rows,
                               temperature=kw.pop("temperature", T), alpha=kw.pop("alpha", ALPHA), **kw)


def loss_of(trainer: DistillationTrainer, inputs: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        return float(trainer.compute_loss(trainer.model, inputs))


# ----------------------------------------------------------------------------- written-out reference
def hand_terms(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, T: float, shift: bool) -> tuple[float, float]:
    """(KL(softmax(t/T) ‖ softmax(s/T))·T², CE) averaged over positions whose target label != -100, by loops."""
    s, t = s.double().tolist(), t.double().tolist()
    y = y.tolist()
    if not shift:  # classification: one position per example
        s, t, y = [[r] for r in s], [[r] for r in t], [[v] for v in y]
    kd_sum = ce_sum = 0.0
    count = 0
    for b in range(len(y)):
        for i in range(len(s[b]) - (1 if shift else 0)):
            target = y[b][i + 1] if shift else y[b][i]
            if target == -100:
                continue
            p = [math.exp(v / T) for v in t[b][i]]
            q = [math.exp(v / T) for v in s[b][i]]
            zp, zq = sum(p), sum(q)
            kd_sum += sum(pi / zp * (math.log(pi / zp) - math.log(qi / zq)) for pi, qi in zip(p, q)) * T * T
            e = [math.exp(v) for v in s[b][i]]
            ce_sum += -math.log(e[target] / sum(e))
            count += 1
    return kd_sum / count, ce_sum / count


def reference_loss(student, teacher, inputs, shift: bool) -> float:
    features = {k: v for k, v in inputs.items() if k != "labels"}
    with torch.no_grad():
        s, t = student(**features).logits, teacher(**features).logits
    kd, ce = hand_terms(s, t, inputs["labels"], T, shift)
    return ALPHA * kd + (1 - ALPHA) * ce


# ----------------------------------------------------------------------------- loss values
def test_causal_lm_loss_equals_hand_reference(tmp_path):
    trainer = make_trainer(tmp_path, gpt2(0), gpt2(1))
    inputs = batch(lm_examples(4))
    expected = reference_loss(trainer.model, trainer.teacher_model, inputs, shift=True)
    assert loss_of(trainer, inputs) == pytest.approx(expected, rel=1e-5)


def test_sequence_classification_loss_equals_hand_reference(tmp_path):
    trainer = make_trainer(tmp_path, distilbert(0), distilbert(1))
    inputs = batch(cls_examples(4))
    expected = reference_loss(trainer.model, trainer.teacher_model, inputs, shift=False)
    assert loss_of(trainer, inputs) == pytest.approx(expected, rel=1e-5)


def test_causal_shift_drops_last_logit_and_first_label():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    y = torch.randint(0, 7, (2, 5), generator=g)
    y[1, 3:] = -100
    terms = distillation_terms(s, t, y, T, causal=True)
    kd, ce = hand_terms(s, t, y, T, shift=True)
    assert (float(terms["kd"]), float(terms["ce"])) == pytest.approx((kd, ce), rel=1e-5)
    # Logits at the last position and at positions whose next label is -100 never count.
    s2, t2 = s.clone(), t.clone()
    s2[:, -1] = torch.randn(2, 7, generator=g) * 9
    t2[1, 2:] = torch.randn(3, 7, generator=g) * 9
    changed = distillation_terms(s2, t2, y, T, causal=True)
    assert torch.allclose(changed["kd"], terms["kd"]) and torch.allclose(changed["ce"], terms["ce"])


def test_padding_positions_do_not_change_the_loss(tmp_path):
    trainer = make_trainer(tmp_path, gpt2(0), gpt2(1))
    inputs = batch(lm_examples(2))  # row 1: labels[6:] == -100, so its logits 5.. predict uncounted labels
    other = {k: v.clone() for k, v in inputs.items()}
    other["input_ids"][1, 5:] = (other["input_ids"][1, 5:] + 7) % VOCAB  # new logits at 5.. (causal: not before)
    with torch.no_grad():
        logits_a = trainer.model(input_ids=inputs["input_ids"]).logits
        logits_b = trainer.model(input_ids=other["input_ids"]).logits
    assert not torch.allclose(logits_a[1, 5:], logits_b[1, 5:])  # the padded logits really differ
    assert loss_of(trainer, other) == pytest.approx(loss_of(trainer, inputs), rel=1e-6)
    # Counting the padded positions instead would change it.
    counted = {**inputs, "labels": inputs["input_ids"].clone()}
    assert loss_of(trainer, counted) != pytest.approx(loss_of(trainer, inputs), rel=1e-4)


# ----------------------------------------------------------------------------- bad input
def test_mismatched_vocabularies_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"teacher vocabulary size 60 != student vocabulary size 50"):
        make_trainer(tmp_path, gpt2(0), gpt2(1, vocab=60))


def test_mismatched_output_sizes_are_refused(tmp_path):
    trainer = make_trainer(tmp_path, distilbert(0, num_labels=2), distilbert(1, num_labels=3))
    with pytest.raises(ValueError, match=r"teacher output \(last logits dim\) size 3 != student .* size 2"):
        trainer.compute_loss(trainer.model, batch(cls_examples(2)))


@pytest.mark.parametrize("kw, match", [({"alpha": 1.5}, "alpha=1.5"), ({"temperature": 0.0}, "T=0.0"),
                                       ({"temperature": float("nan")}, "T=nan")])
def test_bad_alpha_or_temperature_is_refused(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        make_trainer(tmp_path, gpt2(0), gpt2(1), **kw)


def test_teacher_must_be_a_module_and_batches_need_labels(tmp_path):
    with pytest.raises(ValueError, match="teacher_model must be a torch.nn.Module, got str"):
        make_trainer(tmp_path, gpt2(0), "gpt2")
    trainer = make_trainer(tmp_path, gpt2(0), gpt2(1))
    inputs = batch(lm_examples(2))
    del inputs["labels"]
    with pytest.raises(ValueError, match="needs 'labels'.*attention_mask"):
        trainer.compute_loss(trainer.model, inputs)


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("build, rows, shift", [(gpt2, lm_examples, True), (distilbert, cls_examples, False)],
                         ids=["gpt2", "distilbert"])
def test_train_updates_student_only_and_logs_kd_and_ce(tmp_path, build, rows, shift):
    student, teacher = build(0), build(1)
    teacher.train()  # the trainer must switch it to eval itself
    s_before = [p.detach().clone() for p in student.parameters()]
    t_before = [p.detach().clone() for p in teacher.parameters()]
    trainer = make_trainer(tmp_path, student, teacher, rows(), accumulate=2)
    trainer.train()
    assert not teacher.training
    assert any(not torch.equal(a, p) for a, p in zip(s_before, student.parameters()))
    assert all(torch.equal(a, p) and p.grad is None for a, p in zip(t_before, teacher.parameters()))
    train_logs = [log for log in trainer.state.log_history if "loss" in log]
    assert len(train_logs) == 3
    for log in train_logs:  # mean of 2 accumulated batches: a loss not scaled for accumulation would log 2×
        assert log["kd"] > 0 and log["ce"] > 0
        assert log["loss"] == pytest.approx(ALPHA * log["kd"] + (1 - ALPHA) * log["ce"], rel=1e-4)
    held_out = rows()[:2]
    metrics = trainer.evaluate(held_out)  # evaluation runs the same loss, and adds no kd/ce to the train logs
    expected = reference_loss(student, teacher, batch(held_out), shift)
    assert metrics["eval_loss"] == pytest.approx(expected, rel=1e-4) and "kd" not in metrics


def test_causal_lm_detection():
    assert is_causal_lm(gpt2(0)) and not is_causal_lm(distilbert(0))


# ----------------------------------------------------------------------------- optional dependency
def test_kdviz_hf_without_transformers_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` raise ImportError
    monkeypatch.delitem(sys.modules, "kdviz.hf")  # restored after the test
    with pytest.raises(ImportError, match=r"kdviz.hf needs Hugging Face transformers.*pip install -r requirements-optional.txt"):
        importlib.import_module("kdviz.hf")


def test_rest_of_kdviz_never_imports_transformers():
    """Static scan (a subprocess import of every module costs a minute): only kdviz/hf.py names transformers."""
    importers = []
    for path in sorted((ROOT / "kdviz").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            if any(m.split(".")[0] == "transformers" for m in modules):
                importers.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(importers)) == ["kdviz/hf.py"]
