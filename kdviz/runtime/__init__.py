"""The job runtime (no Streamlit): the job protocol (``protocol.py``, its one description), the executor
interface (``executor.py``), the local executor (``manager.py``, ``launch.py``, ``worker.py``,
``records.py``) and the job bodies (``training_jobs.py``, ``feature_jobs.py``)."""
