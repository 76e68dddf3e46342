"""Tiny crafted checkpoints that describe huge networks are refused before any memory is spent on them.

Each attempt runs in a fresh Python process that reports its *peak* resident memory (``ru_maxrss``)
before and after: a model built and thrown away again leaves the current RSS (psutil) where it was,
but not the peak.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hostile_files

ROOT = Path(__file__).resolve().parents[1]
MAX_GROWTH_MB = 50
ATTEMPTS = """
import json, resource, sys
import torch
torch.set_num_threads(1)
from kdviz.checkpoints import CheckpointError, load_checkpoint
from kdviz.hosted import HostedLimits
import hostile_files

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)

load_checkpoint(hostile_files.tiny_checkpoint())  # warm up: torch's first load sets up its own buffers
results = []
for maker, mode in json.loads(sys.argv[1]):
    data = getattr(hostile_files, maker)()
    before = peak_mb()
    try:
        load_checkpoint(data, limits=HostedLimits() if mode == "hosted" else None)
        outcome = "accepted"
    except CheckpointError as err:
        outcome = str(err)
    results.append({"file": maker, "mode": mode, "outcome": outcome, "grew_mb": peak_mb() - before})
print(json.dumps(results))
"""
CASES = {  # (crafted file, mode): what the refusal says
    ("shared_storage_giant", "local"): "a view into a storage of 4 bytes, not 12,845,056 bytes of its own",
    ("shared_storage_giant", "hosted"): "MLP 784-4096-4096-4096-4096-4096-4096-10; this hosted playground accepts",
    ("huge_class_count", "local"): "num_classes=50000000",
    ("huge_class_count", "hosted"): "num_classes=50000000",
}


def attempts(cases) -> list[dict]:
    """Run the attempts in one fresh process (an attempt that allocates raises the peak for the rest,
    but it fails the test itself first)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", ATTEMPTS, json.dumps(list(cases))], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_crafted_files_are_tiny_but_describe_huge_networks():
    assert len(hostile_files.shared_storage_giant()) < 6_000  # MLP 784-4096×6: 87 M parameters
    assert len(hostile_files.huge_class_count()) < 3_000  # 50,000,000 classes


def test_refused_before_memory_is_spent():
    for result, (case, says) in zip(attempts(CASES), CASES.items()):
        assert says in result["outcome"], (case, result)
        assert result["grew_mb"] < MAX_GROWTH_MB, (case, result)
