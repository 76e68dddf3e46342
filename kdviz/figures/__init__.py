"""Every kdviz figure, built from plain data (lists, dicts, records; no Streamlit, no job handles).

Each builder returns a ``plotly.graph_objects.Figure`` (``kd_diagram`` an SVG string); pages only
call ``st.plotly_chart(fig, theme=None)``. One look for all: the Okabe–Ito palette, one colour per
role (teacher / distilled / scratch) and per loss term, large fonts (``kdviz.figures.style``).

- ``training``      — ``metric_curves``, ``accuracy_curves``, ``loss_breakdown``, ``series_lines``, ``run_overlay``
- ``distributions`` — ``probability_bars``, ``confusion_heatmap``, ``per_class_bars``, ``heatmap_row``, ``attention_comparison``
- ``experiments``   — ``scenario_live_accuracy``, ``bias_chart``, ``sweep_chart`` and the result tables
                      (``scenario_table``, ``paper_errors_table``, ``scenario_per_class``, ``comparison_lines``, ``sweep_table``)
- ``calibration``   — ``reliability_diagram``, ``divergence_contributions``, ``schedule_preview``
- ``diagram``       — ``kd_diagram`` (the Home page's SVG)
- ``catalogue``     — ``catalogue_bars``, ``catalogue_table``, ``catalogue_rows`` (born-again, mutual learning, assistants, ensembles)
- ``lm``            — the language-model lab (import as ``from kdviz.figures import lm``)
- ``interview``     — ``run_both_figure`` (the Interview page's "Run both")
"""
from kdviz.figures.calibration import divergence_contributions, reliability_diagram, schedule_preview
from kdviz.figures.catalogue import catalogue_bars, catalogue_rows, catalogue_table
from kdviz.figures.diagram import kd_diagram
from kdviz.figures.distributions import (
    LOG_FLOOR, attention_comparison, confusion_heatmap, heatmap_row, per_class_bars, probability_bars,
)
from kdviz.figures.experiments import (
    bias_chart, comparison_lines, paper_errors_table, scenario_live_accuracy, scenario_per_class, scenario_table,
    sweep_chart, sweep_table,
)
from kdviz.figures.style import PALETTE, RUN_COLORS, TERM_COLORS, colors, validate
from kdviz.figures.training import accuracy_curves, loss_breakdown, metric_curves, run_overlay, series_lines

__all__ = [
    "LOG_FLOOR", "PALETTE", "RUN_COLORS", "TERM_COLORS", "accuracy_curves", "attention_comparison", "bias_chart",
    "catalogue_bars", "catalogue_rows", "catalogue_table",
    "colors", "comparison_lines", "confusion_heatmap", "divergence_contributions", "reliability_diagram", "schedule_preview", "heatmap_row", "kd_diagram", "loss_breakdown", "metric_curves",
    "paper_errors_table", "per_class_bars", "probability_bars", "run_overlay", "scenario_live_accuracy",
    "scenario_per_class", "scenario_table", "series_lines", "sweep_chart", "sweep_table", "validate",
]
