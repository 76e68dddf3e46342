"""Crafted checkpoint files for the tests of what the app refuses (unit, AppTest and browser tests share them)."""
from __future__ import annotations

import io
import pickle
from dataclasses import asdict
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
    return _save(payload)


def _save(payload: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def _views_of_one_storage(cfg: ModelConfig) -> dict:
    """A state_dict for ``cfg`` whose tensors are stride-0 views of one 1-element storage:
    a few bytes on disk for any network size."""
    with torch.device("meta"):  # the names and shapes, without the memory
        shapes = {k: v.shape for k, v in build_model(cfg).state_dict().items()}
    one = torch.zeros(1)
    return {k: one.expand(shape) for k, shape in shapes.items()}


def shared_storage_giant() -> bytes:
    """~5 kB claiming MLP 784-4096×6 (87 M parameters, 348 MB built), all tensors sharing one storage,
    and a made-up 99.9 % accuracy."""
    cfg = ModelConfig("mlp", hidden=(4096,) * 6)
    return _save({"format": FORMAT, "model_config": asdict(cfg), "state_dict": _views_of_one_storage(cfg),
                  "meta": {"test_acc": 0.999}})


def huge_class_count(num_classes: int = 50_000_000) -> bytes:
    """~1.5 kB declaring an MLP 784-8 with ``num_classes`` outputs (its head alone: 1.6 GB if built)."""
    cfg = ModelConfig("mlp", hidden=(8,), num_classes=num_classes)
    return _save({"format": FORMAT, "model_config": asdict(cfg), "state_dict": _views_of_one_storage(cfg), "meta": {}})


def lying_accuracy_checkpoint(claimed: float = 0.999) -> bytes:
    """A genuine (untrained) MLP 784-8-10 whose meta claims ``claimed`` test accuracy."""
    cfg = ModelConfig("mlp", hidden=(8,))
    return _save(checkpoint_payload(build_model(cfg), cfg, {"test_acc": claimed}))
