"""Memory per user: the server and its workers, measured as proportional set size (PSS).

PSS splits each shared page between the processes that map it, so the sum over the server and
its workers is what the machine really spends (RSS would count the shared torch libraries and a
shared data set once per process). Starts the real server on real MNIST, drives it in headless
Chromium, and prints

- idle: after one visit to Home, once the warm worker has loaded (server + every worker);
- one classroom demo running (the Home page's button): the peak, and what the job adds (the first
  job that reads the training images brings their pages into memory: they count here);
- two demos at once, in two sessions: what the second job adds (those pages are shared);
- per-process parts (what one fresh interpreter costs for ``import torch``, torchvision, the data),
  and how long a worker takes to start: forked from the fork server, or a warm spare.

    KDVIZ_DATA_DIR=../shared/data python bench/memory.py
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))  # the browser-test helpers (server, page actions)

from _util import mnist_or_exit, verdict  # noqa: E402  (puts the checkout on sys.path)
from browser_support import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, server_env  # noqa: E402
from ui_actions import click, open_page  # noqa: E402

IDLE_TARGET_MB, JOB_TARGET_MB = 900, 350
MB = 2**20


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def pss_parts(pid: int) -> list[tuple[str, float]]:
    """(role, PSS MiB) for the server and each of its descendants."""
    out = []
    for proc in tree(pid):
        try:
            role = "server" if proc.pid == pid else _role(proc, pid)
            out.append((role, proc.memory_full_info().pss / MB))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def _role(proc: psutil.Process, server_pid: int) -> str:
    cmd = " ".join(proc.cmdline())
    if "forkserver" in cmd and proc.ppid() == server_pid:  # its forked workers show the same command line
        return "fork server"
    if "resource_tracker" in cmd:
        return "resource tracker"
    return f"worker {proc.pid}"


def tree_cpu_s(pid: int) -> float:
    total = 0.0
    for proc in tree(pid):
        try:
            total += sum(proc.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def wait_quiet(pid: int, window_s: float = 3.0, timeout_s: float = 120.0) -> float:
    """Wait until the server and its workers use < 5 % of a core over ``window_s`` (the spare has loaded)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        before = tree_cpu_s(pid)
        time.sleep(window_s)
        if tree_cpu_s(pid) - before < 0.05 * window_s:
            break
    return time.monotonic() - t0


def run_demos(pages, pid: int, timeout_s: float = 600.0) -> tuple[float, float]:
    """Press the classroom demo on each page at once; sample the tree's PSS until every result shows.
    Returns (peak MiB, seconds)."""
    for page in pages:
        click(page, "home_demo_start")
    t0, peak = time.monotonic(), 0.0
    while time.monotonic() - t0 < timeout_s:
        peak = max(peak, sum(mb for _, mb in pss_parts(pid)))
        if all(page.locator("[data-testid='stMain'] h3:has-text('Result')").count() for page in pages):
            return peak, time.monotonic() - t0
        time.sleep(0.3)
    sys.exit(f"the demos did not finish within {timeout_s:.0f} s")


def start_latency(launcher, ready, n: int = 5) -> float:
    """Median seconds from handing a spec to ``launcher`` to the worker's first event (a torch-free
    count job, so only the start is timed); ``ready()`` waits until the launcher is warm again."""
    from kdviz.runtime.launch import Worker

    times = []
    for _ in range(n):
        ready()
        t0 = time.perf_counter()
        worker: Worker = launcher({"fn": "kdviz.runtime.worker:count_job", "n": 1})
        worker.events.get(timeout=60)
        times.append(time.perf_counter() - t0)
        worker.end()
    return statistics.median(times)


def print_start_latencies() -> None:
    from kdviz.runtime.launch import SparePool, spawn_worker, warm_fork_server

    warm_fork_server()
    forked = start_latency(spawn_worker, lambda: time.sleep(1.0))
    pool = SparePool()  # preloads the job modules (torch) and no data
    try:
        spare = start_latency(pool, lambda: (pool.warm_up(), time.sleep(8.0)))
    finally:
        pool.close()
    print(f"  worker start to first event (median of 5): forked from the fork server {1000 * forked:.0f} ms, "
          f"warm spare {1000 * spare:.0f} ms")


def fresh_interpreter(code: str) -> float:
    """PSS (MiB) of a new Python process after running ``code``."""
    probe = f"{code}\nimport psutil; print(psutil.Process().memory_full_info().pss)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "KDVIZ_OFFLINE": "1"})
    return int(out.stdout.split()[-1]) / MB


def print_parts(title: str, parts: list[tuple[str, float]]) -> float:
    total = sum(mb for _, mb in parts)
    print(f"{title}: {total:,.0f} MiB = " + " + ".join(f"{role} {mb:,.0f}" for role, mb in parts))
    return total


def main() -> None:
    import argparse

    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", default=str(ROOT), help="the checkout whose app.py is served (to measure an older kdviz)")
    args = ap.parse_args()
    mnist_or_exit()
    print(f"{psutil.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}; PSS in MiB (2^20 bytes)")
    for label, code in [("python + psutil", "pass"), ("import torch", "import torch"),
                        ("import torch, torchvision", "import torch, torchvision"),
                        ("kdviz.data.load_bundle() (MNIST)", "from kdviz.data import load_bundle; load_bundle()")]:
        print(f"  fresh interpreter, {label:<34} {fresh_interpreter(code):7,.0f} MiB")
    print_start_latencies()
    with tempfile.TemporaryDirectory() as tmp:
        env = server_env(Path(tmp) / "runs", KDVIZ_DATA_SOURCE="auto", KDVIZ_DATA_DIR=os.environ["KDVIZ_DATA_DIR"])
        server = StreamlitServer(Path(args.app) / "app.py", env, Path(tmp) / "server.log").start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                open_page(page, server.url, "")
                if page.locator("[data-testid='stMain'] :text('Not MNIST')").count():
                    sys.exit("the server fell back to the offline digits: set KDVIZ_DATA_DIR to a folder with MNIST")
                waited = wait_quiet(server.proc.pid)
                idle = print_parts(f"idle after one Home visit (quiet after {waited:.0f} s)", pss_parts(server.proc.pid))
                peak, seconds = run_demos([page], server.proc.pid)
                print(f"classroom demo running: peak {peak:,.0f} MiB (finished in {seconds:.1f} s)")
                wait_quiet(server.proc.pid)
                print_parts("idle after the demo", pss_parts(server.proc.pid))
                pages = [page, browser.new_page(viewport={"width": 1400, "height": 1000})]
                open_page(pages[0], server.url, "")
                open_page(pages[1], server.url, "")
                waited = wait_quiet(server.proc.pid)
                idle2 = print_parts(f"idle with two sessions open (quiet after {waited:.0f} s)", pss_parts(server.proc.pid))
                peak2, seconds = run_demos(pages, server.proc.pid)
                print(f"two demos at once (two sessions): peak {peak2:,.0f} MiB (finished in {seconds:.1f} s)")
                browser.close()
        finally:
            server.stop()
    print()
    print(verdict("idle, server + workers (PSS)", idle, IDLE_TARGET_MB, " MiB", higher_is_better=False))
    print(verdict("one running MNIST job adds (PSS)", peak - idle, JOB_TARGET_MB, " MiB", higher_is_better=False))
    print(verdict("two MNIST jobs at once add, per job (PSS)", (peak2 - idle2) / 2, JOB_TARGET_MB, " MiB", higher_is_better=False)
          + f"   (both: {peak2 - idle2:,.0f} MiB over the idle two-session server)")
    print(f"(the targets are the issue's MB read as MiB, which is 4.9 % looser: in decimal MB the figures are "
          f"{idle * MB / 1e6:,.0f}, {(peak - idle) * MB / 1e6:,.0f} and {(peak2 - idle2) * MB / 2e6:,.0f} MB)")


if __name__ == "__main__":
    main()
