"""The lab's runs, shared by the live jobs and the command line: teachers and the student methods.

Student methods (all the same student config, seed, step count and real training names):

- ``scratch``   cross-entropy on the real names only
- ``distilled`` token-level KD (Hinton et al. 2015 per position): alpha·KD + (1 − alpha)·CE, masked per-token mean
- ``batchmean`` the same, but KD reduced with ``F.kl_div(reduction="batchmean")`` (the reduction trap)
- ``seqkd``     sequence-level KD (Kim & Rush 2016): cross-entropy on names the *teacher generated*
"""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Iterator

import torch

from kdviz.lm.corpus import NAMES_VOCAB, Vocab, split_names
from kdviz.lm.kd import check_vocab, vocab_map
from kdviz.lm.model import STUDENT, TEACHER, CharTransformer, LMCheckpoint, LMConfig, load_lm, make_lm
from kdviz.lm.train import LMRecord, LMTrainConfig, Teacher, sample, train_lm

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED_TEACHER = ASSETS / "lm_teacher.pt"
METHODS = ("distilled", "scratch", "batchmean", "seqkd")
TEACHER_TRAIN = LMTrainConfig(steps=1000, batch_size=64, lr=3e-3, eval_every=100)
STUDENT_TRAIN = LMTrainConfig(steps=250, batch_size=32, lr=1e-2, eval_every=50, T=2.0, alpha=0.5)
DEFAULT_TRAIN_N = 300  # real names a student sees: little text, where a teacher's knowledge matters
SEQKD_N = 3000  # names the teacher generates for sequence-level KD
# A vocabulary that differs from the names vocabulary in order and in two extra characters,
# for the vocabulary-alignment demonstration (``reindexed``).
OTHER_VOCAB = Vocab(".'-zyxwvutsrqponmlkjihgfedcba")
EXTRA_TOKEN_BIAS = -3.0  # head bias (relative to the mean) of tokens a re-indexed teacher gains


def make_config(cls, values: dict | None, what: str):
    """A frozen config from a plain dict; unknown keys and bad values are ValueErrors naming them."""
    values = dict(values or {})
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown}; allowed: {sorted(f.name for f in fields(cls))}")
    try:
        return cls(**values)
    except TypeError as err:
        raise ValueError(f"invalid {what} settings {values}: {err}") from err


def check_methods(methods) -> tuple[str, ...]:
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"student methods must be a non-empty selection of {METHODS}, got {list(methods)}")
    return methods


def load_teacher(path: str | Path | None = None) -> LMCheckpoint:
    path = Path(path or SHIPPED_TEACHER)
    if not path.is_file():
        raise ValueError(f"no language-model teacher at {path}; train one first (python -m kdviz lm make-teacher)")
    return load_lm(path)


def reindexed(ckpt: LMCheckpoint, vocab: Vocab = OTHER_VOCAB) -> LMCheckpoint:
    """The same teacher speaking another vocabulary: rows of the embedding and head permuted by token
    string; tokens it gains get a zero head row with a low bias (a little probability mass)."""
    old, cfg = ckpt.vocab, ckpt.model.cfg
    missing = [c for c in old.chars if c not in vocab.chars]
    if missing:
        raise ValueError(f"the new vocabulary lacks the teacher's characters {missing}")
    model = CharTransformer(replace(cfg, vocab_size=vocab.size))
    state = {k: v.clone() for k, v in ckpt.model.state_dict().items()}
    src = torch.tensor([old.chars.index(c) if c in old.chars else 0 for c in vocab.chars])
    known = torch.tensor([c in old.chars for c in vocab.chars])
    for key in ("tok.weight", "head.weight", "head.bias"):
        state[key] = state[key][src].clone()
    state["head.weight"][~known] = 0.0
    state["head.bias"][~known] = ckpt.model.head.bias.detach().mean() + EXTRA_TOKEN_BIAS
    model.load_state_dict(state)
    return LMCheckpoint(model.eval(), vocab, {**ckpt.meta, "reindexed": True})


def teacher_for(ckpt: LMCheckpoint, student_vocab: Vocab, align: bool) -> Teacher:
    """The teacher as a KD target: refused when the vocabularies differ, unless ``align`` maps them."""
    if ckpt.vocab.chars == student_vocab.chars:
        return Teacher(ckpt.model.eval())
    if not align:
        check_vocab(ckpt.vocab, student_vocab)
    return Teacher(ckpt.model.eval(), vocab_map(ckpt.vocab, student_vocab))


def real_names(train_n: int | None, seed: int = 0) -> tuple[list[str], list[str]]:
    """(the first ``train_n`` training names — the student's little text — or all, validation names)."""
    train, val = split_names()
    if train_n is None:
        return train, val
    if not isinstance(train_n, int) or not 1 <= train_n <= len(train):
        raise ValueError(f"train_n must be a whole number in [1, {len(train)}], got {train_n!r}")
    return train[:train_n], val


def teacher_text(ckpt: LMCheckpoint, n: int, seed: int, vocab: Vocab = NAMES_VOCAB) -> list[str]:
    """``n`` names sampled from the teacher at temperature 1, keeping those the student can read."""
    words = sample(ckpt.model, ckpt.vocab, n, 1.0, seed=10_000 + seed)
    return [w for w in words if w and not vocab.outside(w)]


def student_run(method: str, teacher: Teacher, ckpt: LMCheckpoint, words: list[str], val: list[str],
                cfg: LMTrainConfig, student: LMConfig = STUDENT, seqkd_n: int = SEQKD_N) -> tuple[CharTransformer, Iterator[LMRecord]]:
    """A fresh student (seeded by ``cfg.seed``) and the generator that trains it by ``method``."""
    model = make_lm(student, cfg.seed)
    if method == "scratch":
        return model, train_lm(model, words, cfg, val=val)
    if method == "seqkd":
        if not isinstance(seqkd_n, int) or seqkd_n < 1:
            raise ValueError(f"seqkd_n (names the teacher generates) must be a whole number >= 1, got {seqkd_n!r}")
        return model, train_lm(model, teacher_text(ckpt, seqkd_n, cfg.seed), cfg, val=val)
    reduction = "batchmean" if method == "batchmean" else "token"
    return model, train_lm(model, words, replace(cfg, reduction=reduction), teacher=teacher, val=val)


def train_teacher(cfg: LMTrainConfig = TEACHER_TRAIN, model_cfg: LMConfig = TEACHER) -> tuple[CharTransformer, Iterator[LMRecord]]:
    model = make_lm(model_cfg, cfg.seed)
    train, val = split_names()
    return model, train_lm(model, train, cfg, val=val)
