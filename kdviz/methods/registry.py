"""What a distillation method is: one frozen :class:`Method` declaration, kept in :data:`METHODS`.

The objective, the Distill page, ``python -m kdviz compare`` and the tests read everything they
need about a method from its declaration, so adding a method is one file (its pure loss and its
``Method``), one ``register`` line in ``kdviz/methods/__init__.py`` and its reference test.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

KINDS = ("logits", "features", "relations")  # what the loss compares: outputs, activations, or sample-to-sample structure
NEEDS = ("logits", "maps", "features")  # "maps": CNN feature maps [B, C, H, W] on both networks; "features": any layer

Shapes = dict[str, tuple[int, ...]]  # layer name → per-sample shape (no batch dim)


@dataclass(frozen=True)
class Param:
    """A method's own setting beside its weight (e.g. the Jensen–Shannon mixing weight β):
    ``check(value)`` returns the value or raises a ValueError that names the setting and its range."""

    name: str
    label: str
    default: float
    check: Callable[[float], float]


@dataclass(frozen=True)
class Method:
    """One distillation method.

    ``loss`` is pure (the teacher side is detached inside). Its signature follows ``kind``:
    - "logits": ``loss(s_logits [B, C], t_logits [B, C], labels [B], T) -> scalar``; listed as a
      term it *replaces* the default ``alpha·KD``;
    - "features" / "relations": ``loss(adapter(student_feature), teacher_feature) -> scalar``.
    ``adapter(s_shape, t_shape)`` builds a trainable module (per-sample shapes, no batch dim) that
    maps the student feature before the loss (None: identity). ``default_layer(shapes, other)``
    picks this network's layer when none is named, given both networks' per-sample shapes.
    """

    name: str
    label: str
    kind: str
    needs: str
    loss: Callable
    formula: str  # LaTeX
    paper: str
    transfers: str
    default_weight: float = 1.0
    adapter: Callable[[tuple, tuple], nn.Module] | None = None
    default_layer: Callable[[Shapes, Shapes], str] | None = None
    note: str = ""  # a caveat of this implementation the user should see (caps, simplifications)
    divergence: bool = False  # a logits method that swaps KD's KL: weighted alpha·weight·term (see objective)
    param: Param | None = None  # a setting of its own, set per term (Term.param); logits methods only

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.needs not in NEEDS:
            raise ValueError(f"method {self.name!r}: needs must be one of {NEEDS}, got {self.needs!r}")
        on_logits = self.kind == "logits"
        if (self.divergence or self.param is not None) and not on_logits:
            raise ValueError(f"method {self.name!r}: only a logits method can be a divergence or take a param")
        if on_logits != (self.needs == "logits") or on_logits != (self.default_layer is None):
            raise ValueError(f"method {self.name!r}: a logits method needs logits and has no default layer; "
                             "a feature or relation method needs features and names a default layer")

    @property
    def on_logits(self) -> bool:
        return self.kind == "logits"


METHODS: dict[str, Method] = {}  # in registration order (the order the app and `compare` list them)


def register(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"distillation method {method.name!r} is registered twice")
    METHODS[method.name] = method
    return method


# ----------------------------------------------------------------------------- default-layer rules shared by methods
def maps_of(shapes: Shapes) -> list[str]:
    return [k for k, s in shapes.items() if len(s) == 3]  # [C, H, W] per sample


def embedding_layer(shapes: Shapes, other: Shapes | None = None) -> str:
    """The last vector feature ("pooled" for the CNN, the last hidden layer for the MLP)."""
    vectors = [k for k, s in shapes.items() if len(s) == 1]  # [D] per sample
    return vectors[-1] if vectors else (list(shapes)[-1] if shapes else "")


def last_block(shapes: Shapes, other: Shapes | None = None) -> str:
    """The last stage map of a CNN, else the embedding."""
    maps = maps_of(shapes)
    return maps[-1] if maps else embedding_layer(shapes)
