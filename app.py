"""kdviz — a live, visual explorer for knowledge distillation. Run: ``streamlit run app.py``.

This script is the frame: page config, navigation and the sidebar every page shares (data set
status, device, job counts, stop-all).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from kdviz.ui.frame import render_sidebar
from kdviz.ui.guard import hide_error_details, run_guarded
from kdviz.ui.hosted import hosted_badge, limits
from kdviz.ui.server import tune_server_process

ROOT = Path(__file__).resolve().parent
# Why not "pages/": Streamlit 1.67 treats a folder named "pages" next to the entry script as
# its legacy (v1) multipage layout until st.navigation has run once in the server process, so
# the first visitor of a fresh server who deep-links to /teacher got pages/teacher.py alone,
# without this frame (tests/browser/test_e2e.py::test_first_deep_link_after_start_gets_the_frame).
PAGES_DIR = ROOT / "app_pages"
PAGES = (  # file under PAGES_DIR, title, icon
    ("home.py", "Home", ":material/home:"),
    ("temperature.py", "Temperature lab", ":material/thermostat:"),
    ("teacher.py", "Teacher", ":material/school:"),
    ("distill.py", "Distill", ":material/compress:"),
    ("feature_maps.py", "Feature maps", ":material/grid_view:"),
    ("experiments.py", "Experiments", ":material/science:"),
    ("catalogue.py", "Self-distillation & ensembles", ":material/diversity_3:"),
    ("lm.py", "Language models", ":material/text_fields:"),
    ("runs.py", "Saved runs", ":material/folder_open:"),
    ("interview.py", "Interview prep", ":material/quiz:"),
    ("lesson.py", "Lesson", ":material/co_present:"),
)


def pages() -> list[st.Page]:
    """One st.Page per entry of ``PAGES``; the first (Home) is the default."""
    # url paths default to the file stem ("teacher", "distill", ...)
    return [st.Page(str(PAGES_DIR / name), title=title, icon=icon, default=i == 0) for i, (name, title, icon) in enumerate(PAGES)]


def main() -> None:
    tune_server_process()
    hosted = limits() is not None
    if hosted:
        hide_error_details()  # tracebacks show server paths to strangers; see kdviz/ui/guard.py
    st.set_page_config(page_title="kdviz — knowledge distillation", page_icon=":material/school:", layout="wide")
    page = st.navigation(pages())
    render_sidebar()
    hosted_badge()
    run_guarded(page, hosted)


main()
