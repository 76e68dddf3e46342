"""kdviz: a visual, live explorer for knowledge distillation. The core never imports Streamlit."""

__version__ = "0.1.0"
