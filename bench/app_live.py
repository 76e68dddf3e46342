"""The app adds little: training inside the running app vs the headless engine, live refresh, memory.

Starts the real server (``streamlit run app.py`` on real MNIST), drives the Teacher page in headless
Chromium and trains the issue's reference model (MLP 784-128-10, batch 64, one torch thread) for
``--minutes`` of continuous live training: whenever a run finishes, Start is pressed again. Prints

- samples/s of each in-app run — its average over the whole run (images ÷ seconds since the first
  step, evaluations included), as the page's "Images / s" shows once a run has finished — against
  the same job function run headless in this process, averaged the same way, before and after the
  app phase (so drift hits both sides) → ratio, target ≥ 90 % (#12; it was 80 % before). (Until
  session 9 both sides read the *last* record's rate: its 10–20 steps and the final test
  evaluation, a noisy figure that said little about the run);
- where the CPU went during the app phase: seconds of CPU per wall second of the server process,
  the training workers and the browser (Chromium + Playwright), on these 2 cores;
- the refresh rate the *browser* saw: the live caption's update counter read by Playwright every
  ``SAMPLE_S`` seconds, as updates/s per window, target ≥ 2 /s;
- the server's RSS (and server + workers) over time: growth from minute 1 to the end, and the
  least-squares slope, target ≤ 100 MB over 10 minutes.

    KDVIZ_DATA_DIR=../shared/data python bench/app_live.py            # 10 minutes (the target)
    KDVIZ_DATA_DIR=../shared/data python bench/app_live.py --minutes 2 # a quick look
    KDVIZ_DATA_DIR=../shared/data python bench/app_live.py --browser-nice 19  # the browser as if on another machine
    KDVIZ_DATA_DIR=../shared/data python bench/app_live.py --browser-cpus 1   # the browser kept off one core

On these 2 cores Chromium draws without a GPU: at 2.5 updates/s it took ~0.4 of a core even with
no chart on the page, so a local browser costs the training worker CPU that a hosted user's does not.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))  # the browser-test helpers (server, page actions)

from _util import mnist_or_exit, verdict  # noqa: E402  (puts the checkout on sys.path)
from browser_support import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, pin_threads, renice_threads, server_env, tree_rss  # noqa: E402
from ui_actions import click, metric_value, open_page, set_text  # noqa: E402

from kdviz.runtime.training_jobs import teacher_job  # noqa: E402

HIDDEN, BATCH, EPOCHS = "128", "64", "20"  # 20 epochs of 60k images: one run lasts ~1 minute at 20k images/s
SAMPLE_S = 5.0
LIVE = re.compile(r"live view: every [\d.]+ s.*?update (\d+)")


def headless_rate(out_dir: str) -> float:
    """samples/s of the same job the page starts, iterated in this process on one thread."""
    spec = {"fn": "kdviz.runtime.training_jobs:teacher_job", "data": "auto", "device": "cpu", "out_dir": out_dir,
            "model": {"arch": "mlp", "hidden": [int(HIDDEN)], "dropout": 0.2},
            "train": {"epochs": float(EPOCHS), "batch_size": int(BATCH), "lr": 1e-3, "optimizer": "adam"}}
    last = None
    for event in teacher_job(spec):
        if event["type"] == "record":
            last = event
        elif event["type"] == "error":
            sys.exit(f"headless run failed: {event['text']}")
    return last["samples"] / last["elapsed_s"]  # the run's average, as the page shows it when finished


def configure(page) -> None:
    """The Teacher page with the reference model; EPOCHS so a run lasts about a minute."""
    set_text(page, "teacher_hidden", HIDDEN)
    page.locator(".st-key-teacher_batch [role='combobox']").first.click()
    page.get_by_role("option", name=BATCH, exact=True).click()
    time.sleep(0.5)
    set_text(page, "teacher_epochs", EPOCHS)


def read_live(page) -> tuple[int | None, float | None, bool]:
    """(update counter of the live caption, Images/s shown, finished?) as the browser shows them now."""
    main = page.locator("[data-testid='stMain']").inner_text()
    match = LIVE.search(main)
    rate = metric_value(page, "Images / s")
    shown = float(rate.replace(",", "")) if rate and rate[0].isdigit() else None
    return (int(match.group(1)) if match else None), shown, "Finished." in main


class Trace:
    """What the app phase saw: per-window refresh rates, per-run samples/s, RSS samples."""

    def __init__(self, server_pid: int) -> None:
        self.pid, self.t0 = server_pid, time.monotonic()
        self.refresh: list[float] = []
        self.run_rates: list[float] = []
        self.rss: list[tuple[float, int, int]] = []  # (s since start, server RSS, server + workers RSS)
        self.errors: list[str] = []
        self.cpu: CpuSplit | None = None  # set when the app phase starts

    def sample_rss(self) -> None:
        server = psutil.Process(self.pid).memory_info().rss
        self.rss.append((time.monotonic() - self.t0, server, tree_rss(self.pid)))


def _cpu_s(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.NoSuchProcess:
        return 0.0


class CpuSplit:
    """CPU seconds of the server process, its training workers and the browser (Chromium + Playwright:
    this process's other descendants) between :meth:`start` and the last :meth:`sample`. A worker's
    time is its latest reading (workers come and go with each run), so the final seconds of one that
    exits between two samples are missed: a slight undercount."""

    def __init__(self, server_pid: int) -> None:
        self.server = psutil.Process(server_pid)
        self.seen: dict[int, tuple[float, str]] = {}  # pid → (latest CPU seconds, "worker" | "browser")
        self.base: dict[int, float] = {}
        self.t0 = self.t1 = time.monotonic()
        self.server0 = self.server1 = _cpu_s(self.server)

    def _processes(self) -> tuple[list, list]:
        """(the server's descendants: its workers, this process's other descendants: the browser)."""
        workers = self.server.children(recursive=True)
        theirs = {p.pid for p in workers} | {self.server.pid}
        return workers, [p for p in psutil.Process().children(recursive=True) if p.pid not in theirs]

    def _read(self) -> None:
        workers, browser = self._processes()
        for kind, procs in (("worker", workers), ("browser", browser)):
            for proc in procs:
                self.seen[proc.pid] = (_cpu_s(proc), kind)
        self.server1, self.t1 = _cpu_s(self.server), time.monotonic()

    def start(self) -> None:
        self._read()
        self.base = {pid: cpu for pid, (cpu, _) in self.seen.items()}
        self.server0, self.t0 = self.server1, self.t1

    sample = _read

    def place_processes(self, nice: int, cpus: set[int] | None) -> None:
        """Every thread of the browser's processes to ``nice`` and onto ``cpus``, and the training workers
        (the fork server and spare too, so new workers inherit it) onto the other cores. New renderers
        appear as pages load and new workers with each run, so this runs at every sample."""
        workers, browser = self._processes()
        for proc in browser:
            if nice:
                renice_threads(proc, nice)
            if cpus:
                pin_threads(proc, cpus)
        if cpus:
            for proc in workers:
                pin_threads(proc, os.sched_getaffinity(0) - cpus)

    def line(self) -> str:
        wall = max(self.t1 - self.t0, 1e-9)
        share = {kind: sum(cpu - self.base.get(pid, 0.0) for pid, (cpu, k) in self.seen.items() if k == kind) / wall
                 for kind in ("worker", "browser")}
        return (f"CPU during the app phase, cores' worth (of {os.cpu_count()}): server {(self.server1 - self.server0) / wall:.2f}, "
                f"training workers {share['worker']:.2f}, browser {share['browser']:.2f}")


def app_phase(page, url: str, trace: Trace, minutes: float, browser_nice: int, browser_cpus: set[int] | None) -> None:
    """Continuous live training for ``minutes``; restarts each finished run; samples every SAMPLE_S."""
    open_page(page, url, "teacher")
    configure(page)
    click(page, "teacher_start")
    trace.cpu = CpuSplit(trace.pid)
    trace.cpu.start()
    trace.cpu.place_processes(browser_nice, browser_cpus)
    end, prev, last_rate = time.monotonic() + 60 * minutes, None, None
    while time.monotonic() < end:
        time.sleep(SAMPLE_S)
        count, rate, finished = read_live(page)
        now = time.monotonic()
        if count is not None and prev is not None and count >= prev[1]:
            trace.refresh.append((count - prev[1]) / (now - prev[0]))
        prev = (now, count) if count is not None else None
        last_rate = rate or last_rate
        trace.sample_rss()
        if finished:
            if last_rate:
                trace.run_rates.append(last_rate)
            last_rate, prev = None, None
            click(page, "teacher_start")
        trace.cpu.sample()
        trace.cpu.place_processes(browser_nice, browser_cpus)
        if page.locator("[data-testid='stException']").count():
            trace.errors.append(page.locator("[data-testid='stException']").first.inner_text()[:200])
            break


def slope_mb_per_10min(rss: list[tuple[float, int, int]], col: int) -> float:
    xs, ys = [r[0] for r in rss], [r[col] / 2**20 for r in rss]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 600 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def report(trace: Trace, headless: list[float], minutes: float) -> bool:
    app = statistics.median(trace.run_rates) if trace.run_rates else 0.0
    base = statistics.fmean(headless)
    after_1min = [r for r in trace.rss if r[0] >= 60] or trace.rss
    growth = (after_1min[-1][1] - after_1min[0][1]) / 2**20
    print(f"\nheadless engine (same job, this process, 1 thread): {', '.join(f'{h:,.0f}' for h in headless)} samples/s")
    print(f"inside the app, per run (its average, on the page):  {', '.join(f'{r:,.0f}' for r in trace.run_rates)} samples/s")
    print(f"live refresh seen by the browser, per {SAMPLE_S:g} s window: n={len(trace.refresh)}, "
          f"median {statistics.median(trace.refresh) if trace.refresh else 0:.2f}/s, min {min(trace.refresh, default=0):.2f}/s")
    print(f"server RSS: {after_1min[0][1] / 2**20:,.0f} MiB at {after_1min[0][0]:.0f} s → {trace.rss[-1][1] / 2**20:,.0f} MiB at "
          f"{trace.rss[-1][0]:.0f} s (max {max(r[1] for r in trace.rss) / 2**20:,.0f}); slope {slope_mb_per_10min(after_1min, 1):+.1f} MiB/10 min")
    print(f"server + workers RSS: max {max(r[2] for r in trace.rss) / 2**20:,.0f} MiB (workers come and go with each run)")
    if trace.cpu is not None:
        print(trace.cpu.line())
    if trace.errors:
        print(f"exceptions on the page: {trace.errors}")
    lines = [verdict("in-app / headless samples/s", 100 * app / base, 90, "%"),
             verdict("browser refresh rate (median window)", statistics.median(trace.refresh) if trace.refresh else 0, 2, "/s"),
             verdict(f"server RSS growth over {minutes:g} min (after minute 1)", growth, 100, " MiB", higher_is_better=False)]
    print("\n".join(lines))
    return all("PASS" in line for line in lines) and not trace.errors


def _cpus(text: str) -> set[int]:
    """``--browser-cpus 1`` or ``0,1``: cores of this machine."""
    try:
        cpus = {int(c) for c in text.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected core numbers such as 1 or 0,1, got {text!r}") from None
    mine = os.sched_getaffinity(0)
    if not cpus or not cpus < mine:
        raise argparse.ArgumentTypeError(f"cores {sorted(cpus)} must be some, not all, of this machine's {sorted(mine)}")
    return cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--browser-nice", type=int, default=0, choices=range(20), metavar="0-19",
                        help="run Chromium at this niceness, as if the user's browser were on another machine "
                             "(the hosted case; 0, the default: a local user's browser, at the server's priority)")
    parser.add_argument("--browser-cpus", type=_cpus, default=None, metavar="LIST",
                        help="pin Chromium and Playwright to these cores, e.g. 1, and the training workers to the others: "
                             "the hosted case, where the user's browser draws on the user's machine")
    args = parser.parse_args()
    mnist_or_exit()
    torch.set_num_threads(1)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        print(f"machine: {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}; model MLP 784-{HIDDEN}-10, batch {BATCH}; "
              f"browser at nice {args.browser_nice} on cores {sorted(args.browser_cpus) if args.browser_cpus else 'any'}, "
              f"workers at nice {os.environ.get('KDVIZ_WORKER_NICE', 'default')}")
        headless = [headless_rate(tmp)]
        passed = {k: os.environ[k] for k in ("KDVIZ_WORKER_NICE",) if k in os.environ}  # to compare worker priorities
        env = server_env(Path(tmp) / "runs", KDVIZ_DATA_SOURCE="auto", KDVIZ_DATA_DIR=os.environ.get("KDVIZ_DATA_DIR", ""), **passed)
        server = StreamlitServer(ROOT / "app.py", env, Path(tmp) / "server.log").start()
        trace = Trace(server.proc.pid)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                app_phase(page, server.url, trace, args.minutes, args.browser_nice, args.browser_cpus)
                browser.close()
        finally:
            server.stop()
        headless.append(headless_rate(tmp))
    sys.exit(0 if report(trace, headless, args.minutes) else 1)


if __name__ == "__main__":
    main()
