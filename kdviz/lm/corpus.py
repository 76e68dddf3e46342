"""The language-model lab's text: US Census first names, a character vocabulary, padded batches.

``kdviz/assets/lm_names.txt.gz`` holds 5,163 distinct lower-case first names (a–z only) from the
1990 US Census lists shipped in the MIT-licensed PyPI package ``names`` 0.3.0 (files
``dist.female.first`` and ``dist.male.first``); see README.md, "Language-model lab".

A name is one sequence: input ``.emma`` predicts target ``emma.`` — the boundary token ``.``
(index 0) both starts and ends a name, as in Karpathy's makemore. Batches are right-padded;
padded targets are ``-100`` (ignored by ``kdviz.losses.ce_loss``) and the mask is False there.
"""
from __future__ import annotations

import functools
import gzip
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from kdviz.data import HIDDEN_LABEL

CORPUS_PATH = Path(__file__).resolve().parents[1] / "assets" / "lm_names.txt.gz"
BOUNDARY = "."
CONTEXT = 16  # positions a model sees; a name may have at most CONTEXT - 1 characters
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Vocab:
    """Characters in index order; index 0 is the boundary token."""

    chars: str

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars) or not self.chars or self.chars[0] != BOUNDARY:
            raise ValueError(f"a vocabulary needs distinct characters starting with {BOUNDARY!r}, got {self.chars!r}")

    @property
    def size(self) -> int:
        return len(self.chars)

    def outside(self, text: str) -> list[str]:
        """Characters of ``text`` this vocabulary lacks (sorted, each once)."""
        return sorted(set(text) - set(self.chars))

    def encode(self, text: str) -> list[int]:
        bad = self.outside(text)
        if bad:
            raise ValueError(f"characters {bad} are not in the vocabulary ({self.size} tokens: {self.chars!r})")
        return [self.chars.index(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


NAMES_VOCAB = Vocab(BOUNDARY + "abcdefghijklmnopqrstuvwxyz")


def check_word(word: str, vocab: Vocab = NAMES_VOCAB, context: int = CONTEXT) -> str:
    """A word the lab can show: non-empty, in the vocabulary, short enough for the context."""
    word = str(word).strip().lower()
    if not word:
        raise ValueError("type a word: the empty string has no characters to predict")
    if BOUNDARY in word:
        raise ValueError(f"{BOUNDARY!r} is the boundary token; type the word without it")
    if len(word) > context - 1:
        raise ValueError(f"{word!r} has {len(word)} characters; the context holds at most {context - 1}")
    bad = vocab.outside(word)
    if bad:
        raise ValueError(f"{word!r} has characters outside the vocabulary: {bad} (allowed: {vocab.chars[1:]!r})")
    return word


@functools.lru_cache(maxsize=1)
def load_names() -> tuple[str, ...]:
    with gzip.open(CORPUS_PATH, "rt", encoding="utf-8") as fh:
        return tuple(line.strip() for line in fh if line.strip())


def split_names(names: tuple[str, ...] | None = None, seed: int = 0) -> tuple[list[str], list[str]]:
    """A fixed shuffle, then (train, validation) with ``VAL_FRACTION`` held out."""
    names = list(load_names() if names is None else names)
    random.Random(seed).shuffle(names)
    n_val = max(1, int(len(names) * VAL_FRACTION))
    return names[n_val:], names[:n_val]


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor  # [B, S] input ids (padding = boundary id 0)
    y: torch.Tensor  # [B, S] target ids, HIDDEN_LABEL where padded
    mask: torch.Tensor  # [B, S] bool, True where a target counts


def encode_batch(words: list[str], vocab: Vocab = NAMES_VOCAB, context: int = CONTEXT) -> Batch:
    """Right-padded ``[B, S]`` tensors, S = longest word + 1 (≤ context)."""
    if not words:
        raise ValueError("a batch needs at least one word")
    codes = [vocab.encode(w) for w in words]
    longest = max(len(c) for c in codes)
    if longest > context - 1:
        raise ValueError(f"a word has {longest} characters; the context holds at most {context - 1}")
    s = longest + 1
    # Padded rows as Python lists, then one tensor each: 2 torch.tensor calls instead of 2 per word
    # (measured on 32 names: 1.9 → 0.46 ms; the default demo encodes ~1,000 batches).
    x = torch.tensor([[0] + c + [0] * (s - 1 - len(c)) for c in codes], dtype=torch.long)
    y = torch.tensor([c + [0] + [HIDDEN_LABEL] * (s - 1 - len(c)) for c in codes], dtype=torch.long)
    return Batch(x, y, y != HIDDEN_LABEL)
