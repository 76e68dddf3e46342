"""Streamlit side of kdviz (only ``app.py``, ``app_pages/`` and this package import streamlit).

Infrastructure used by every page:

- ``jobs``     — JobManager / JobHandle and ``start_job``/``get_job``/``forget_job`` (training in worker processes)
- ``live``     — control buttons, the live fragment (``live_panel``), progress, cached figures, save button
- ``frame``    — the shared sidebar (data set, device, job counts, stop-all); ``current_device``, ``data_source``, ``get_bundle``
- ``teachers`` — the session's current teacher (``teacher_ckpt``/``teacher_summary``), the shipped default
- ``forms``    — model/training widgets with stable keys, parsed into ModelConfig/TrainConfig
- ``scenario_views`` — scenario and sweep results on Home and Experiments (figures come from ``kdviz.figures``)
- ``server``   — once-per-process tuning of the server (garbage-collector thresholds)
"""
