"""Crafted checkpoint files for the tests of what the app refuses (unit, AppTest and browser tests share them)."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from kdviz.checkpoints import FORMAT, checkpoint_payload
from kdviz.models import ModelConfig, build_model


class WritesAFile:
    """Unpickling this runs code that writes ``target`` (what a hostile checkpoint would do)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        import builtins

        return (builtins.exec, (f"open({str(self.target)!r}, 'w').write('pwned')",))


def code_running_pickle(target: Path, protocol: int = 2) -> bytes:
    """A file shaped like a kdviz checkpoint whose unpickling would write ``target``."""
    return pickle.dumps({"format": FORMAT, "payload": WritesAFile(target)}, protocol=protocol)


def tiny_checkpoint(claims_hidden: tuple[int, ...] | None = None) -> bytes:
    """A kdviz checkpoint of an MLP 784-8-10; ``claims_hidden`` makes its config lie about the widths."""
    cfg = ModelConfig("mlp", hidden=(8,))
    payload = checkpoint_payload(build_model(cfg), cfg, {"test_acc": 0.5})
    if claims_hidden:
        payload["model_config"]["hidden"] = list(claims_hidden)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()
