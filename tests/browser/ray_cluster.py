"""A private Ray head for the browser tests that run the app with ``KDVIZ_EXECUTOR=ray``.

The app connects to it through ``RAY_ADDRESS``, as a deployment does (docs/deployment.md): a Ray
instance started *inside* the Streamlit server loses its GCS connection (ray-project/ray#45570).
The head uses Ray's token authentication with a token of its own (``RAY_AUTH_TOKEN_PATH``) and a
temporary folder of its own, so that stopping it stops only its processes, never another Ray
instance on the machine. Its workers inherit ``PYTHONPATH`` = this checkout (on a real cluster,
kdviz is installed on the nodes).
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
from browser_support import ROOT, free_port, rm_tree

RAY = Path(sys.executable).with_name("ray")


class RayHead:
    def __init__(self, cpus: int = 2) -> None:
        # short: Ray's unix socket paths live under it (107 characters at most)
        self.dir = Path(tempfile.mkdtemp(prefix="kdray.", dir="/tmp"))
        token = self.dir / "token"
        token.write_text(secrets.token_hex(32))
        self.port, self.cpus = free_port(), cpus
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_ADDRESS": f"127.0.0.1:{self.port}"}

    def start(self) -> "RayHead":
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        env.pop("RAY_ADDRESS")
        subprocess.run([str(RAY), "start", "--head", f"--port={self.port}", "--node-ip-address=127.0.0.1",
                        f"--num-cpus={self.cpus}", "--include-dashboard=false", "--disable-usage-stats",
                        f"--temp-dir={self.dir / 'r'}"], env=env, check=True, timeout=180,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        return self

    def roots(self) -> list[int]:
        """The head's own processes (GCS, raylet, monitors): each names this head's folder."""
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(str(self.dir) in arg for arg in proc.info["cmdline"] or ()):
                    found.append(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found

    def stop(self) -> None:
        procs = []
        for pid in self.roots():
            try:
                root = psutil.Process(pid)
                procs += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)
        rm_tree(self.dir)
