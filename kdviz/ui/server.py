"""Server-process tuning applied once, from the first script run of the Streamlit server.

Why: under load (20 sessions, each drawing live Plotly charts) the server's heap holds millions
of long-lived objects (torch, plotly, streamlit modules and their protos). CPython's default GC
thresholds (700, 10, 10) then trigger a full collection about once a second, each walking that
whole heap: probes measured 0.5–1.7 s pauses, during which no session is served (a fresh Home
page took > 30 s). ``gc.freeze()`` moves everything allocated so far (the imported libraries) to
a permanent generation that collections skip, and a higher first threshold makes young
collections rarer; reference counting still frees almost everything at once, so memory stays
flat (the 10-minute RSS figure in bench/app_live.py checks that).

The GIL switch interval is shortened too: Streamlit starts a thread per script run and its event
loop waits for each new thread to start, so under load (py-spy: ~28 % of the event loop's time in
``Thread.start``) a faster hand-over of the GIL to waiting threads keeps every session responsive.
"""
from __future__ import annotations

import functools
import gc
import sys

GC_THRESHOLDS = (50_000, 20, 100)  # (young, middle, old); CPython's default is (700, 10, 10)
SWITCH_INTERVAL_S = 0.001  # CPython's default is 0.005


@functools.cache
def tune_server_process() -> tuple[int, int, int]:
    """Freeze the import-time heap and raise the GC thresholds; idempotent (runs once per process)."""
    gc.collect()  # free import-time garbage before freezing what is left
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return gc.get_threshold()
