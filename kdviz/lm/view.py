"""Plain data for the page's views: one word's next-token distributions, and the reduction trap by length."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdviz.lm.corpus import CONTEXT, NAMES_VOCAB, Batch, Vocab, check_word, encode_batch, split_names
from kdviz.lm.kd import effective_kd_share, per_position_kd, reductions
from kdviz.lm.model import CharTransformer
from kdviz.losses import check_temperature
from kdviz.data import HIDDEN_LABEL

SHOWN_PADDING = 2  # padded positions appended to a typed word, to show what the mask excludes
REDUCTION_BATCH = 32


@torch.no_grad()
def token_view(teacher: CharTransformer, student: CharTransformer, word: str, T: float, vocab: Vocab = NAMES_VOCAB) -> dict:
    """Teacher's and student's softmax(z/T) at each position of ``.word`` plus padding, and the per-position KD."""
    T = check_temperature(T)
    word = check_word(word, vocab, min(teacher.cfg.context, student.cfg.context))
    pad = min(SHOWN_PADDING, min(teacher.cfg.context, student.cfg.context) - len(word) - 1)
    b = pad_to(encode_batch([word], vocab), len(word) + 1 + pad)
    t_logits, s_logits = teacher.eval()(b.x)[0], student.eval()(b.x)[0]  # [S, V]
    excluded = (~b.mask[0]).tolist()
    text = vocab.chars[0] + word
    positions = [f"pad {i - len(word)}" if excluded[i] else f"after '{text[:i + 1]}'" for i in range(b.x.shape[1])]
    return {"word": word, "positions": positions, "excluded": excluded, "vocab": vocab.chars, "T": T,
            "teacher": F.softmax(t_logits / T, dim=-1).tolist(), "student": F.softmax(s_logits / T, dim=-1).tolist(),
            "kd": per_position_kd(s_logits, t_logits, T), "targets": [vocab.chars[int(c)] for c in b.y[0] if c != HIDDEN_LABEL]}


def pad_to(b: Batch, length: int) -> Batch:
    """The batch right-padded to ``length`` positions (padding: input 0, target ignored, mask False)."""
    extra = length - b.x.shape[1]
    if extra < 0:
        raise ValueError(f"cannot pad a batch of length {b.x.shape[1]} down to {length}")
    x = F.pad(b.x, (0, extra), value=0)
    y = F.pad(b.y, (0, extra), value=HIDDEN_LABEL)
    return Batch(x, y, y != HIDDEN_LABEL)


@torch.no_grad()
def reduction_rows(teacher: CharTransformer, student: CharTransformer, T: float, alpha: float,
                   words: list[str] | None = None) -> list[dict]:
    """For padded lengths from the longest word to the context: the same batch's KD term under
    batchmean / per-token mean / masked per-token mean, and the KD share of the objective
    (batchmean's value relative to the right one scales alpha's intended weight)."""
    words = words or split_names()[1][:REDUCTION_BATCH]
    base = encode_batch(words, NAMES_VOCAB)
    rows = []
    for length in range(base.x.shape[1], min(teacher.cfg.context, student.cfg.context, CONTEXT) + 1):
        b = pad_to(base, length)
        r = reductions(student.eval()(b.x), teacher.eval()(b.x), T, b.mask)
        scale = r["batchmean"] / r["masked_token_mean"] if r["masked_token_mean"] > 0 else 0.0
        rows.append({"length": length, **r, "batchmean_share": effective_kd_share(alpha, scale),
                     "token_share": effective_kd_share(alpha, 1.0)})
    return rows
