"""Knowledge distillation inside Hugging Face's ``transformers.Trainer`` (optional dependency).

``DistillationTrainer`` is a drop-in ``Trainer`` whose loss is the kdviz objective
(Hinton, Vinyals & Dean 2015) built on ``kdviz.losses``::

    total = alpha · kd_loss(student, teacher, T, mask) + (1 − alpha) · ce_loss(student, labels)

``alpha`` weights the *distillation* term, as everywhere in kdviz. Many tutorials write the
opposite (``loss = α·CE + (1 − α)·KD``): if your code does, pass ``alpha = 1 − that α``.

Only positions whose label is not -100 count, for both terms. Causal language models are
shifted as their own loss is (logits[:, :-1] predict labels[:, 1:]); sequence classifiers
(logits [B, C], labels [B]) are used as they are. ``kd`` and ``ce`` (unweighted) are logged
next to ``loss``, averaged over the batches since the previous log.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kdviz.losses import ce_loss, check_alpha, check_temperature, kd_loss
from kdviz.data import HIDDEN_LABEL

try:
    from transformers import Trainer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
except ImportError as exc:  # transformers is optional: nothing else in kdviz needs it
    raise ImportError(
        "kdviz.hf needs Hugging Face transformers (for its Trainer); "
        "install it with: pip install -r requirements-optional.txt"
    ) from exc

_VOCAB_HINT = (
    "distillation compares the two output distributions entry by entry, so teacher and student need "
    "the same tokenizer / label set (resize_token_embeddings is not enough: the ids must mean the same)"
)


def _vocab_mismatch(teacher_size: int, student_size: int, what: str) -> ValueError:
    return ValueError(f"teacher {what} size {teacher_size} != student {what} size {student_size}: {_VOCAB_HINT}")


def check_same_vocab(teacher: nn.Module, student: nn.Module) -> None:
    """Refuse a teacher/student pair whose configs declare different vocabulary sizes."""
    t_size = getattr(getattr(teacher, "config", None), "vocab_size", None)
    s_size = getattr(getattr(student, "config", None), "vocab_size", None)
    if t_size is not None and s_size is not None and t_size != s_size:
        raise _vocab_mismatch(t_size, s_size, "vocabulary")


def is_causal_lm(model: nn.Module) -> bool:
    """True for ``AutoModelForCausalLM`` classes (GPT-2, Llama, ...), whose logits at i predict token i+1."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT wrapper
    return type(base).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()


def logits_of(outputs: Any) -> torch.Tensor:
    """The logits of a model output: a ``ModelOutput`` / dict with ``logits``, a tuple, or a bare tensor."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and "logits" in outputs:
        return outputs["logits"]
    return outputs[0]


def counted_positions(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, causal: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align logits with the labels they predict: causal LMs drop the last logit and the first label."""
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise _vocab_mismatch(teacher_logits.shape[-1], student_logits.shape[-1], "output (last logits dim)")
    if causal:
        # logits[:, i] is the prediction for token i+1, exactly as the models' own loss shifts it.
        return student_logits[:, :-1], teacher_logits[:, :-1], labels[:, 1:]
    return student_logits, teacher_logits, labels


def distillation_terms(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, T: float, causal: bool
) -> dict[str, torch.Tensor]:
    """Unweighted ``kd`` and ``ce`` over the counted positions (labels != -100)."""
    s, t, y = counted_positions(student_logits, teacher_logits, labels, causal)
    return {"kd": kd_loss(s, t, T, mask=y != HIDDEN_LABEL), "ce": ce_loss(s, y)}


class DistillationTrainer(Trainer):
    """A ``transformers.Trainer`` that trains ``model`` (the student) to match a frozen ``teacher_model``.

    Usage::

        trainer = DistillationTrainer(model=student, teacher_model=teacher, temperature=2.0, alpha=0.5,
                                      args=TrainingArguments(...), train_dataset=ds)
        trainer.train()

    ``alpha`` weights the distillation term: total = alpha·KD + (1−alpha)·CE. If your code has
    ``loss = α·CE + (1−α)·KD``, pass ``alpha = 1 − that α``. The teacher is put in eval mode, run under
    ``torch.no_grad()`` on the student's device and never optimised or saved. Each batch needs
    ``labels`` (-100 marks positions that do not count; a batch where none counts is refused with a
    ValueError, as ``kd_loss`` refuses an empty mask). ``causal_lm`` (default: detected from the
    student's class) shifts logits and labels by one position.
    """

    # compute_loss returns a per-batch mean, so the Trainer must divide it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args: Any,
        teacher_model: nn.Module,
        temperature: float = 2.0,
        alpha: float = 0.5,
        causal_lm: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(teacher_model, nn.Module):
            raise ValueError(f"teacher_model must be a torch.nn.Module, got {type(teacher_model).__name__}")
        self.temperature = check_temperature(temperature)
        self.alpha = check_alpha(alpha)
        self._logged_sums: dict[str, torch.Tensor] = {}
        self._logged_batches = 0
        super().__init__(*args, **kwargs)
        check_same_vocab(teacher_model, self.model)
        # Our loss ignores num_items_in_batch; False also makes older Trainers divide by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.causal_lm = is_causal_lm(self.model) if causal_lm is None else bool(causal_lm)
        self.teacher_model = teacher_model.eval()
        student_param = next(self.model.parameters(), None)
        if student_param is not None:
            self._follow_student(student_param.device)

    def _follow_student(self, device: torch.device) -> None:
        first = next(self.teacher_model.parameters(), None)
        if first is not None and first.device != device:
            self.teacher_model.to(device)

    def _teacher_logits(self, inputs: dict[str, Any], device: torch.device) -> torch.Tensor:
        self._follow_student(device)  # again per batch: accelerate may move the student after __init__
        if self.teacher_model.training:
            self.teacher_model.eval()  # dropout off: the soft targets must be the teacher's best guess
        with torch.no_grad():
            return logits_of(self.teacher_model(**inputs))

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        if inputs.get("labels") is None:
            raise ValueError(
                f"DistillationTrainer needs 'labels' in every batch (use {HIDDEN_LABEL} for positions that "
                f"do not count); got keys {sorted(inputs)}"
            )
        features = {k: v for k, v in inputs.items() if k != "labels"}  # no labels: skip the model's own loss
        outputs = model(**features)
        student = logits_of(outputs)
        teacher = self._teacher_logits(features, student.device)
        terms = distillation_terms(student, teacher, inputs["labels"], self.temperature, self.causal_lm)
        loss = self.alpha * terms["kd"] + (1.0 - self.alpha) * terms["ce"]
        if model.training:
            self._accumulate(terms)
        return (loss, outputs) if return_outputs else loss

    def _accumulate(self, terms: dict[str, torch.Tensor]) -> None:
        # Sums stay tensors until the next log: no device sync per step.
        for name, value in terms.items():
            self._logged_sums[name] = self._logged_sums.get(name, 0.0) + value.detach()
        self._logged_batches += 1

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add the mean ``kd`` and ``ce`` since the previous training log to the training logs."""
        if "loss" in logs and self._logged_batches:
            for name, total in self._logged_sums.items():
                logs[name] = float(total) / self._logged_batches
            self._logged_sums, self._logged_batches = {}, 0
        super().log(logs, *args, **kwargs)
