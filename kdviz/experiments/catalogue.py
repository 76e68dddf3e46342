"""The distillation catalogue's four experiments, over seeds: born-again networks, deep mutual
learning, teacher-assistant distillation and multi-teacher (ensemble) distillation.

:class:`CatalogueConfig` holds one experiment's settings (validated when built, so a bad request
fails before anything trains); :func:`summarise` turns per-seed accuracies into rows with
mean ± std and within-noise verdicts (``kdviz.experiments.stats``). The event generators live in
``kdviz.experiments.catalogue_jobs``.

Defaults (the page's and the CLI's) are the setting measured on real MNIST, 3 seeds, transfer set
``subset:5000``, 5 epochs, student MLP 784-64-10 (784-16-10 for the teacher assistant), each
experiment 3-6 minutes on a loaded 2-core CPU: there, born-again generations 1-3 (T = 1, 4, 8) did
not beat generation 0 (gen1 within noise, later ones worse); mutual learning matched training
alone within noise; through an assistant matched direct distillation within noise (both below
scratch at alpha 0.9); the two-teacher ensemble's student beat the CNN-taught one beyond noise but
not scratch. ``python -m kdviz selfdistill KIND --seeds 3`` reproduces the tables.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

from kdviz.data import parse_transfer
from kdviz.engine import TrainConfig
from kdviz.experiments.ensembles import MAX_TEACHERS, check_mode
from kdviz.experiments.selfdistill import MAX_PEERS, check_peers, generation_distills
from kdviz.experiments.stats import compare, mean_std
from kdviz.methods.objective import DistillConfig
from kdviz.models import ModelConfig

KINDS = ("born-again", "mutual", "ta", "ensemble")
TITLES = {"born-again": "Born-again networks", "mutual": "Deep mutual learning",
          "ta": "Teacher assistant", "ensemble": "Multi-teacher (ensemble)"}
MAX_SEEDS = 5
# Per-experiment defaults over CatalogueConfig's: the paper's DML loss is CE + KL at T = 1; the
# teacher-assistant student is far smaller than the teacher (as in Mirzadeh et al.).
KIND_DEFAULTS = {"mutual": {"T": 1.0, "alpha": 0.5}, "ta": {"hidden": (16,)}}
MAX_GENERATIONS = 6


@dataclass(frozen=True)
class CatalogueConfig:
    """One catalogue experiment. ``hidden`` is the student MLP's hidden widths; the rest per kind."""

    kind: str = "born-again"
    seeds: int = 3
    transfer: str = "subset:5000"  # the images every student learns from
    epochs: float = 5.0
    batch_size: int = 64
    lr: float = 1e-3
    hidden: tuple[int, ...] = (64,)
    T: float = 4.0
    alpha: float = 0.9
    generations: int = 4  # born-again: generation 0 from labels + 3 taught
    temperatures: tuple[float, ...] | None = (1.0, 4.0, 8.0)  # born-again: T of generations 1..
    peers: int = 2  # mutual learning
    assistant_hidden: tuple[int, ...] = (256,)  # teacher assistant
    modes: tuple[str, ...] = ("logits", "probs")  # ensemble: how the teachers are combined
    teacher_hidden: tuple[int, ...] = (256,)  # ensemble: the second (MLP) teacher
    teacher_epochs: float = 1.0  # ensemble: its training on the full training set
    teacher_ckpt: str = ""  # ta / ensemble: the CNN teacher (default: the shipped one)
    max_peers: int = MAX_PEERS

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"experiment must be one of {KINDS}, got {self.kind!r}")
        for name in ("hidden", "assistant_hidden", "teacher_hidden", "modes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.temperatures is not None:
            object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not 1 <= self.seeds <= MAX_SEEDS:
            raise ValueError(f"seeds must be a whole number in 1..{MAX_SEEDS}, got {self.seeds!r}")
        choice = parse_transfer(self.transfer)
        if choice.kind in ("subset", "labelled") and choice.arg < 1:
            raise ValueError(f"transfer set {self.transfer!r}: the number of images must be at least 1, got {choice.arg}")
        self.train_config(0), self.distill(), self.student(), self.assistant(), self.mlp_teacher()
        self._check_kind()

    def _check_kind(self) -> None:
        if self.kind == "born-again":
            if not isinstance(self.generations, int) or not 1 <= self.generations <= MAX_GENERATIONS:
                raise ValueError(f"generations must be a whole number in 1..{MAX_GENERATIONS}, got {self.generations!r}")
            generation_distills(self.distill(), self.generations, self.temperatures)
        if self.kind == "mutual":
            check_peers(self.peers, self.max_peers)
        if self.kind == "ensemble":
            if not self.modes or len(set(self.modes)) != len(self.modes):
                raise ValueError(f"name one or more distinct ensemble modes, got {self.modes}")
            [check_mode(m) for m in self.modes]
            TrainConfig(epochs=self.teacher_epochs)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=seed, log_every=10)

    def distill(self) -> DistillConfig:
        return DistillConfig(T=self.T, alpha=self.alpha)

    def student(self) -> ModelConfig:
        return ModelConfig("mlp", hidden=self.hidden)

    def assistant(self) -> ModelConfig:
        return ModelConfig("mlp", hidden=self.assistant_hidden)

    def mlp_teacher(self) -> ModelConfig:
        return ModelConfig("mlp", hidden=self.teacher_hidden)


def config_from_spec(spec: Mapping) -> CatalogueConfig:
    """A config from a job spec / CLI dict; unknown keys are ignored, bad values are ValueErrors naming them."""
    names = {f.name for f in fields(CatalogueConfig)}
    given = {k: v for k, v in spec.items() if k in names}
    return CatalogueConfig(**{**KIND_DEFAULTS.get(given.get("kind"), {}), **given})


def summarise(accs: Mapping[str, Sequence[float]], refs: Mapping[str, Sequence[str]]) -> list[dict]:
    """One row per entry of ``accs`` (per-seed accuracies): mean ± std and a comparison (difference,
    2·SE, within noise) against each row named in ``refs[name]``."""
    rows = []
    for name, values in accs.items():
        ms = mean_std(values)
        vs = {}
        for ref in refs.get(name, ()):
            c = compare(values, accs[ref])
            vs[ref] = {"diff": c.diff, "two_se": 2 * c.stderr, "within_noise": c.within_noise, "text": c.format(100, 2, " pt")}
        rows.append({"name": name, "accs": list(values), "mean": ms.mean, "std": ms.std, "n": ms.n, "vs": vs})
    return rows


def gains_stop(rows: Sequence[Mapping], prefix: str = "gen") -> str:
    """Born-again: the first generation whose gain over the previous one is not a real gain."""
    gens = [r for r in rows if r["name"].startswith(prefix)]
    for prev, row in zip(gens, gens[1:]):
        c = row["vs"].get(prev["name"])
        if c is None or c["within_noise"] or c["diff"] <= 0:
            return f"gains stop at {row['name']}: it is not better than {prev['name']} beyond noise ({c['text'] if c else 'n/a'})"
    if len(gens) < 2:
        return "one generation only: nothing to compare"
    return f"every generation beat the previous one beyond noise, up to {gens[-1]['name']}"



def with_cap(cfg: CatalogueConfig, max_peers: int | None) -> CatalogueConfig:
    """``cfg`` with a lower peer cap (hosted mode); a request over it is refused by validation."""
    return cfg if max_peers is None else replace(cfg, max_peers=min(MAX_PEERS, max_peers))


__all__ = ["CatalogueConfig", "KINDS", "MAX_GENERATIONS", "MAX_SEEDS", "MAX_TEACHERS", "TITLES", "config_from_spec",
           "gains_stop", "summarise", "with_cap"]
