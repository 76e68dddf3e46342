"""A tiny causal transformer (nanoGPT style) for character-level names; ``[B, S] ids → [B, S, V] logits``.

Teacher and student are the same code with different configs: ``TEACHER`` (3 layers, d=64) and
``STUDENT`` (1 layer, d=32). Attention is causal, and batches are right-padded, so a real
position never attends to padding: no key mask is needed.

Checkpoints hold only plain data (config dict, vocabulary string, tensors, numbers), so they
load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from kdviz.lm.corpus import CONTEXT, NAMES_VOCAB, Vocab


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int = NAMES_VOCAB.size
    context: int = CONTEXT
    n_layer: int = 3
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {name}={value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")

    def label(self) -> str:
        return f"transformer {self.n_layer}×{self.d_model}"


TEACHER = LMConfig(n_layer=3, n_head=4, d_model=64)
STUDENT = LMConfig(n_layer=1, n_head=2, d_model=32, dropout=0.0)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)  # each [B, S, D]
        q, k, v = (t.view(b, s, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))  # [B, H, S, D/H]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, s, d))


class Block(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.ndim != 2 or idx.shape[1] > self.cfg.context:
            raise ValueError(f"input ids must be [B, S] with S <= {self.cfg.context}, got shape {tuple(idx.shape)}")
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))  # [B, S, D]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # [B, S, V]


def make_lm(cfg: LMConfig, seed: int = 0) -> CharTransformer:
    """A freshly initialised model; the same seed gives the same weights."""
    torch.manual_seed(seed)
    return CharTransformer(cfg)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- checkpoints
@dataclass
class LMCheckpoint:
    model: CharTransformer
    vocab: Vocab
    meta: dict


def save_lm(path: str | Path, model: CharTransformer, vocab: Vocab, meta: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"kind": "kdviz-lm", "config": asdict(model.cfg), "vocab": vocab.chars, "state": state,
                "meta": dict(meta or {})}, path)
    return path


def load_lm(source) -> LMCheckpoint:
    """A checkpoint from a path or file object; anything malformed is a ValueError saying why."""
    try:
        raw = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors come in many types; all mean "not a usable file"
        raise ValueError(f"not a kdviz language-model checkpoint (it could not be read: {err})") from err
    if not isinstance(raw, dict) or raw.get("kind") != "kdviz-lm":
        raise ValueError("not a kdviz language-model checkpoint (no 'kind': 'kdviz-lm' entry)")
    try:
        known = {f.name for f in fields(LMConfig)}
        cfg = LMConfig(**{k: v for k, v in dict(raw["config"]).items() if k in known})
        vocab = Vocab(str(raw["vocab"]))
        if vocab.size != cfg.vocab_size:
            raise ValueError(f"its vocabulary has {vocab.size} characters but the model {cfg.vocab_size} outputs")
        model = CharTransformer(cfg)
        model.load_state_dict(raw["state"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise ValueError(f"the language-model checkpoint does not fit its own config: {err}") from err
    return LMCheckpoint(model.eval(), vocab, dict(raw.get("meta") or {}))


def bits(nats: float) -> float:
    return nats / math.log(2)
