"""URL query parameters ↔ validated page settings (pure; the Streamlit side is ``kdviz/ui/urlstate.py``).

A page declares its URL-backed settings as a schema ``{name: spec}`` where ``spec`` is a
:class:`Param` or the shorthand ``(type, default[, allowed])``:

- ``(float, 4.0, (0.5, 20.0))`` / ``(int, 1, (1, 50))`` — a number in the inclusive range
- ``(int, 64, [32, 64, 128])`` — a **list** (or set) of numbers means choices
- ``(str, "mlp:128", ["mlp:30", "mlp:128"])`` — a string from the choices
- ``(str, "", r"[a-z0-9 ]{0,40}")`` — a string matching the regular expression
- ``(bool, False)`` — true/false, 1/0, yes/no, on/off
- ``(list, (), r"[a-z0-9-]+")`` — comma-separated strings, each matching the pattern (or in choices)

``parse_params`` turns a query mapping into values, refusing bad ones with a message that names
the parameter and what is allowed (and using the default); ``encode_params`` is the inverse.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

KINDS = (int, float, str, bool, list)
MAX_RAW_LEN = 300  # longer URL values are refused outright
# ASCII only: Python's int()/float() and \d also accept other scripts' digits ("٣" is 3) and "1_000".
INT_RE = re.compile(r"[+-]?[0-9]{1,18}")
FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?")
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Param:
    """One URL-backed setting. ``low``/``high`` bound numbers; ``choices`` or ``pattern`` bound strings."""

    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    pattern: str | None = None  # full-match regex for str values and list items
    max_items: int = 16  # list only

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"URL parameter type must be one of int, float, str, bool, list; got {self.kind!r}")
        object.__setattr__(self, "choices", tuple(self.choices))
        if self.kind is list:
            object.__setattr__(self, "default", tuple(self.default))
        check_value(self, self.default, "default")  # a schema whose default is invalid is a page bug


def param(spec: Param | tuple) -> Param:
    """A :class:`Param` from the shorthand ``(type, default[, allowed])`` (see module docstring)."""
    if isinstance(spec, Param):
        return spec
    if not isinstance(spec, tuple) or not 2 <= len(spec) <= 3:
        raise ValueError(f"URL parameter spec must be Param or (type, default[, allowed]), got {spec!r}")
    kind, default, allowed = (*spec, None)[:3]
    if allowed is None:
        return Param(kind, default)
    if isinstance(allowed, str):
        return Param(kind, default, pattern=allowed)
    if kind in (int, float) and isinstance(allowed, tuple) and len(allowed) == 2:
        return Param(kind, default, low=allowed[0], high=allowed[1])
    return Param(kind, default, choices=tuple(sorted(allowed)) if isinstance(allowed, (set, frozenset)) else tuple(allowed))


def describe(p: Param) -> str:
    """What a parameter accepts, for messages: ``"a number from 0.5 to 20"``."""
    if p.kind is bool:
        return "true or false"
    if p.choices:
        listed = ", ".join(str(c) for c in p.choices)
        return f"a comma-separated list from: {listed}" if p.kind is list else f"one of: {listed}"
    if p.kind in (int, float):
        noun = "a whole number" if p.kind is int else "a finite number"
        if p.low is not None and p.high is not None:
            return f"{noun} from {p.low:g} to {p.high:g}"
        return noun + (f" ≥ {p.low:g}" if p.low is not None else "") + (f" ≤ {p.high:g}" if p.high is not None else "")
    what = f"matching {p.pattern}" if p.pattern else "of printable characters"
    return f"up to {p.max_items} comma-separated items {what}" if p.kind is list else f"text {what}"


def _check_number(p: Param, value: float) -> None:
    if not math.isfinite(value) or (p.low is not None and value < p.low) or (p.high is not None and value > p.high):
        raise ValueError("out of range")
    if p.choices and value not in p.choices:
        raise ValueError("not an allowed choice")


def _check_text(p: Param, value: str) -> None:
    if p.choices and value not in p.choices:
        raise ValueError("not an allowed choice")
    if p.pattern and not re.fullmatch(p.pattern, value):
        raise ValueError("does not match")
    if not value.isprintable():
        raise ValueError("control characters")


def _valid(p: Param, value: Any) -> bool:
    if p.kind is bool:
        return isinstance(value, bool)
    if p.kind in (int, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        _check_number(p, float(value))
        return p.kind is float or float(value).is_integer()
    if p.kind is str:
        if not isinstance(value, str):
            return False
        _check_text(p, value)
        return True
    if not isinstance(value, (list, tuple)) or len(value) > p.max_items or not all(isinstance(v, str) for v in value):
        return False
    for item in value:
        _check_text(p, item)
    return True


def check_value(p: Param, value: Any, name: str = "value") -> Any:
    """``value`` itself if it is valid for ``p``; else ValueError naming ``name`` and what is allowed."""
    try:
        ok = _valid(p, value)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed: it must be {describe(p)}")
    return value


def parse_value(p: Param, raw: str) -> Any:
    """The typed value of one URL string; ValueError (without the name) when it is refused."""
    text = raw.strip()
    if len(text) > MAX_RAW_LEN:
        raise ValueError(f"too long ({len(text)} characters)")
    if p.kind is bool:
        if text.lower() not in TRUE_WORDS + FALSE_WORDS:
            raise ValueError("not true/false")
        return text.lower() in TRUE_WORDS
    if p.kind is int:
        if not INT_RE.fullmatch(text):
            raise ValueError("not a whole number")
        value: Any = int(text)
    elif p.kind is float:
        if not FLOAT_RE.fullmatch(text):  # so "nan", "inf", "1_0" and non-ASCII digits never reach float()
            raise ValueError("not a number")
        value = float(text)
    elif p.kind is str:
        value = text
    else:
        value = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))  # ordered, no duplicates
    return check_value(p, value)


def _last(raw: Any) -> str:
    """A query value may arrive as a list (repeated key): the last one wins, as in Streamlit."""
    if isinstance(raw, (list, tuple)):
        return str(raw[-1]) if raw else ""
    return str(raw)


def parse_params(schema: Mapping[str, Param | tuple], query: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """``(values, messages)``: every schema name gets a value (its default when absent or refused);
    each refused parameter adds one message naming it, what was given and what is allowed.
    Query keys not in the schema are ignored."""
    values, messages = {}, []
    for name, spec in schema.items():
        p = param(spec)
        values[name] = p.default
        if name not in query:
            continue
        raw = _last(query[name])
        try:
            values[name] = parse_value(p, raw)
        except ValueError:
            shown = raw if len(raw) <= 40 else raw[:40] + "…"
            messages.append(f"URL parameter '{name}={shown}' was ignored: it must be {describe(p)}. Using the default {encode_value(p, p.default) or '(empty)'}.")
    return values, messages


def encode_value(p: Param, value: Any) -> str:
    if p.kind is bool:
        return "true" if value else "false"
    if p.kind is list:
        return ",".join(value)
    if p.kind is float:
        return repr(float(value))  # repr round-trips every float exactly
    return str(int(value)) if p.kind is int else str(value)


def encode_params(schema: Mapping[str, Param | tuple], values: Mapping[str, Any], keep_defaults: bool = False) -> dict[str, str]:
    """Query strings for ``values`` (validated); values equal to their default are left out unless asked."""
    out = {}
    for name, spec in schema.items():
        p = param(spec)
        if name not in values:
            continue
        value = check_value(p, values[name], name)
        if keep_defaults or _normal(p, value) != _normal(p, p.default):
            out[name] = encode_value(p, value)
    return out


def _normal(p: Param, value: Any) -> Any:
    return tuple(value) if p.kind is list else value
