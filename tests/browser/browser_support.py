"""Helpers for the real-browser tests: a Streamlit server in a subprocess, Chromium, page waits, RSS.

Nothing here downloads a browser: Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
APP_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning'][data-test-connection-state='CONNECTED']"
EXCEPTION = "[data-testid='stException']"
HEADING = "[data-testid='stMain'] h1"
SKELETON = "[data-testid='stMain'] [data-testid='stSkeleton']"


def chromium_unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM} (install Debian's 'chromium' package; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        return f"playwright is not installed ({err}); pip install -r requirements-dev.txt"
    return None


def free_port() -> int:
    """A free TCP port on the loopback interface (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class StreamlitServer:
    """``streamlit run <script>`` in its own process group (workers included), logging to ``log_path``."""

    script: Path
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> "StreamlitServer":
        cmd = [sys.executable, "-m", "streamlit", "run", str(self.script), "--server.headless", "true",
               "--server.port", str(self.port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")
        # a new session = a new process group: stop() ends the server and its spawned workers together
        self.proc = subprocess.Popen(cmd, cwd=self.script.parent, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.wait_healthy(timeout_s)
        return self

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200 and resp.read().strip() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"streamlit was not healthy after {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM to the group, then SIGKILL after 5 s. Only this server's own group is signalled."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(5)


def server_env(runs_dir: Path, **extra: str) -> dict[str, str]:
    """The test server's environment: synthetic data, private run and job folders, CPU, no network, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KDVIZ_", "STREAMLIT_"))}
    env.update(KDVIZ_DATA_SOURCE="synthetic", KDVIZ_RUNS_DIR=str(runs_dir), KDVIZ_JOBS_DIR=str(runs_dir / "jobs"),
               KDVIZ_DEVICE="cpu", KDVIZ_OFFLINE="1",
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- pages
def wait_idle(page, timeout_ms: float = 30_000) -> None:
    """Wait until the script run has finished and the websocket is connected."""
    page.wait_for_selector(APP_IDLE, timeout=timeout_ms, state="attached")


def wait_rendered(page, timeout_ms: float = 60_000) -> None:
    """The script has drawn the page: a heading in the main area (so the first run has started;
    before it the app reads as idle with an empty page) and then no script run in progress."""
    page.wait_for_selector(HEADING, timeout=timeout_ms, state="visible")
    wait_idle(page, timeout_ms)
    wait_no_skeletons(page)


def wait_no_skeletons(page, timeout_ms: float = 15_000) -> None:
    """Widgets whose code loads lazily show a placeholder (``stSkeleton``) first; wait for the real ones.

    Not an error when one stays (a page may show a placeholder on purpose): the caller's own
    waits then report what is missing.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => !document.querySelector(\"{SKELETON}\")", timeout=timeout_ms)
    except PlaywrightTimeout:
        pass


def exception_texts(page) -> list[str]:
    return [t[:2000] for t in page.locator(EXCEPTION).all_inner_texts()]


def assert_no_exception(page, where: str) -> None:
    found = exception_texts(page)
    assert not found, f"Streamlit exception on {where}:\n" + "\n---\n".join(found)


def alert_texts(page, kind: str = "") -> list[str]:
    """Texts of st.error / st.warning / st.info boxes (``kind`` "Error", "Warning", "Info", "" = all)."""
    return page.locator(f"[data-testid='stAlertContent{kind}']").all_inner_texts() if kind else \
        page.locator("[data-testid='stAlert']").all_inner_texts()


RESULT_TABLE = "[data-testid='stDataFrame']:visible"


def screenshot(page, name: str, scroll_to: str | None = None) -> Path:
    """A PNG of the window. Streamlit scrolls its main area inside the page, so ``full_page`` only
    gives the window: ``scroll_to`` (a selector, e.g. ``RESULT_TABLE``) brings that element into view first."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if scroll_to:
        try:
            page.locator(scroll_to).last.scroll_into_view_if_needed(timeout=5_000)
        except Exception as err:  # a picture of the top of the page is still a picture
            print(f"(screenshot {name}: could not scroll to {scroll_to}: {err})")
    page.screenshot(path=str(path), full_page=True)
    return path


def sidebar_links(page) -> list[tuple[str, str]]:
    """``(label, href)`` of every page in the sidebar navigation."""
    return page.eval_on_selector_all(
        # innerText also holds the material-icon ligature name ("school\n\nTeacher"): keep the last line
        "[data-testid='stSidebarNav'] a", "els => els.map(e => [e.innerText.trim().split('\\n').pop().trim(), e.href])")


def prime(browser, url: str) -> dict[str, str]:
    """Open ``url`` once in a throwaway session; return the sidebar's label → path map."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        wait_rendered(page, 120_000)
        return {label: href.removeprefix(url).lstrip("/") for label, href in sidebar_links(page)}
    finally:
        context.close()


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")[:60] or "page"


# ----------------------------------------------------------------------------- memory
def _each_thread(proc, change) -> int:
    """``change(tid)`` for every thread of ``proc`` (a psutil.Process); how many it changed (returned True).
    Threads that end meanwhile are skipped."""
    import psutil

    try:
        tids = [t.id for t in proc.threads()]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0
    n = 0
    for tid in tids:
        try:
            n += bool(change(tid))
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError):
            pass
    return n


def renice_threads(proc, nice: int) -> int:
    """Lower every thread of ``proc`` to ``nice`` (a psutil.Process); returns how many changed. On Linux a
    niceness belongs to a thread: renicing a pid changes its main thread only."""
    import psutil

    def lower(tid: int) -> bool:
        thread = psutil.Process(tid)  # /proc/<tid> addresses one thread; setpriority(tid) renices only it
        if thread.nice() < nice:
            thread.nice(nice)
            return True
        return False

    return _each_thread(proc, lower)


def pin_threads(proc, cpus: set[int]) -> int:
    """Restrict every thread of ``proc`` (a psutil.Process) to the cores ``cpus``; returns how many changed.
    Like a niceness, a CPU affinity belongs to a thread on Linux; threads started later inherit it."""

    def pin(tid: int) -> bool:
        if os.sched_getaffinity(tid) != cpus:
            os.sched_setaffinity(tid, cpus)
            return True
        return False

    return _each_thread(proc, pin)


def tree_rss(pid: int, *more: int) -> int:
    """Resident memory (bytes) of a process and all its descendants (the training workers); ``more``:
    further roots (a Ray head whose workers run the jobs)."""
    return _tree_sum((pid, *more), lambda proc: proc.memory_info().rss)


def tree_pss(pid: int, *more: int) -> int:
    """Proportional set size (bytes) of a process and its descendants: shared pages (torch's libraries,
    the mapped data set) split between the processes that map them — what the machine spends."""
    return _tree_sum((pid, *more), lambda proc: proc.memory_full_info().pss)


def _tree(roots) -> list:
    import psutil

    procs = {}
    for pid in roots:
        try:
            root = psutil.Process(pid)
            procs.update((p.pid, p) for p in (root, *root.children(recursive=True)))
        except psutil.NoSuchProcess:
            pass
    return list(procs.values())


def _tree_sum(roots, read) -> int:
    import psutil

    total = 0
    for proc in _tree(roots):
        try:
            total += read(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass  # it ended between listing and reading
    return total


def worker_pids(pid: int, *more: int) -> set[int]:
    """PIDs of the training workers under ``pid`` (and the roots ``more``): processes forked by the fork
    server (they show its command line but are not its direct child), "spawn" children, or Ray job
    actors (``KDVIZ_EXECUTOR=ray``) — not the fork server itself, not the resource tracker, not Ray's
    idle worker pool."""
    import psutil

    found = set()
    for child in _tree((pid, *more)):
        try:
            cmd = " ".join(child.cmdline())
            if "spawn_main" in cmd or ("forkserver" in cmd and child.ppid() != pid) or "JobActor" in cmd:
                found.add(child.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found - {pid, *more}


def describe_pids(pids: set[int]) -> str:
    """"pid status age" for each process (to tell a worker that is starting or exiting from a busy one)."""
    import psutil

    out = []
    for pid in sorted(pids):
        try:
            proc = psutil.Process(pid)
            out.append(f"{pid} {proc.status()} {time.time() - proc.create_time():.1f}s cpu={sum(proc.cpu_times()[:2]):.1f}s")
        except psutil.NoSuchProcess:
            out.append(f"{pid} gone")
    return "; ".join(out)


class RssSampler(threading.Thread):
    """Samples :func:`tree_rss` and the worker count every ``every_s`` seconds in the background.

    ``peak`` is the largest RSS sum (bytes), ``peak_pss`` the largest PSS sum, ``max_workers`` the
    most training workers seen at once.
    """

    def __init__(self, pid: int, every_s: float = 0.25, more_roots=lambda: ()) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s, self.more_roots = pid, every_s, more_roots  # more_roots(): e.g. a Ray head's processes
        self.peak, self.peak_pss, self.samples, self.max_workers = 0, 0, 0, 0
        self.max_detail = ""  # the workers seen when max_workers was reached: pid, status, age
        self._halt = threading.Event()

    def worker_pids(self) -> set[int]:
        return worker_pids(self.pid, *self.more_roots())

    def run(self) -> None:
        while not self._halt.is_set():
            roots = self.more_roots()
            self.peak = max(self.peak, tree_rss(self.pid, *roots))
            self.peak_pss = max(self.peak_pss, tree_pss(self.pid, *roots))
            pids = self.worker_pids()
            if len(pids) > self.max_workers:
                self.max_workers, self.max_detail = len(pids), describe_pids(pids)
            self.samples += 1
            self._halt.wait(self.every_s)

    def stop(self) -> int:
        self._halt.set()
        self.join(5)
        return self.peak


def rm_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
