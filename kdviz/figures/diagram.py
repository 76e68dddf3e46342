"""The Home page's picture of knowledge distillation, as a static SVG (in the figures' colours).

A static SVG rather than a Plotly figure: it is the first thing on the Home page, and a fresh
browser then need not load Plotly's 4 MB script to draw it (Home renders faster under load).
"""
from __future__ import annotations

from kdviz.figures.style import PALETTE, RUN_COLORS, TERM_COLORS

ARROW = "#444444"


def _svg_box(x: float, y: float, w: float, h: float, colour: str, lines: list[str]) -> str:
    """A rounded box with centred lines of text (the first one bold)."""
    spans = []
    for i, text in enumerate(lines):
        weight = ' font-weight="bold"' if i == 0 else ""
        spans.append(f'<tspan x="{x + w / 2:g}" dy="{0 if i == 0 else 20}"{weight}>{text}</tspan>')
    top = y + h / 2 - 10 * (len(lines) - 1) + 5
    return (f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="8" fill="{colour}" fill-opacity="0.15" '
            f'stroke="{colour}" stroke-width="2"/><text x="{x + w / 2:g}" y="{top:g}" text-anchor="middle">{"".join(spans)}</text>')


def _svg_arrow(x0: float, y0: float, x1: float, y1: float, label: str = "", lx: float | None = None, ly: float | None = None) -> str:
    arrow = f'<line x1="{x0:g}" y1="{y0:g}" x2="{x1:g}" y2="{y1:g}" stroke="{ARROW}" stroke-width="2" marker-end="url(#kdviz-head)"/>'
    if not label:
        return arrow
    lx, ly = (x0 + x1) / 2 if lx is None else lx, (y0 + y1) / 2 - 8 if ly is None else ly
    return arrow + f'<text x="{lx:g}" y="{ly:g}" text-anchor="middle" font-size="14">{label}</text>'


def kd_diagram() -> str:
    """Teacher → soft targets softmax(z/T) → student, with the hard labels as the second signal (SVG).

    The student has the distilled run's colour and the two signals the colours of their loss terms
    in the breakdown chart (KD, CE), so the picture and the charts below it agree."""
    parts = [
        _svg_box(10, 10, 220, 90, RUN_COLORS["teacher"], ["Teacher", "big, already trained"]),
        _svg_box(340, 10, 290, 90, PALETTE[2], ["Soft targets", "softmax(zₜ / T)", "‘a 3 that looks a bit like an 8’"]),
        _svg_box(740, 10, 230, 90, RUN_COLORS["distilled"], ["Student", "small, learns both"]),
        _svg_box(340, 140, 290, 64, TERM_COLORS["ce"], ["Labels (hard targets)", "‘this is a 3’"]),
        _svg_arrow(230, 55, 336, 55, "logits zₜ"),
        _svg_arrow(630, 55, 736, 55, "α · T² · KL"),
        _svg_arrow(630, 172, 736, 90, "(1 − α) · CE", lx=720, ly=170),
    ]
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 980 215" font-family="sans-serif" font-size="15" '
            'role="img" aria-label="Teacher, soft targets and labels, student">'
            '<defs><marker id="kdviz-head" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
            f'<path d="M0,0 L10,4 L0,8 z" fill="{ARROW}"/></marker></defs>' + "".join(parts) + "</svg>")
