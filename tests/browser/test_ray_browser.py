"""The app with ``KDVIZ_EXECUTOR=ray`` in headless Chromium: a Teacher run goes through a Ray actor,
trains live, and its slot is freed when it ends (issue #16; the executor contract is checked
headless in ``tests/test_ray_executor.py``). Screenshot: artifacts/screenshots/ray_teacher_finished.png."""
from __future__ import annotations

import time

import psutil
import pytest
from browser_support import ARTIFACTS, ROOT, StreamlitServer, alert_texts, assert_no_exception, prime, screenshot, server_env
from ui_actions import chart_points, click, job_counts, metric_value, open_page, set_text

pytest.importorskip("ray", reason="ray (requirements-optional.txt) is not installed")
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ray_server(browser_available, tmp_path_factory):
    runs = tmp_path_factory.mktemp("ray-runs")
    server = StreamlitServer(ROOT / "app.py", server_env(runs, KDVIZ_EXECUTOR="ray", KDVIZ_MAX_JOBS="1"), ARTIFACTS / "server-ray.log")
    server.start()
    yield server
    server.stop()


def ray_actor_pids(server_pid: int) -> set[int]:
    """Processes under the server that run a kdviz job actor (Ray names a busy worker ``ray::JobActor...``)."""
    found = set()
    for proc in psutil.Process(server_pid).children(recursive=True):
        try:
            if "JobActor" in " ".join(proc.cmdline()):
                found.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def test_a_teacher_run_trains_in_a_ray_actor(browser, ray_server):
    path = prime(browser, ray_server.url)["Teacher"]
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_page(page, ray_server.url, path)
    set_text(page, "teacher_epochs", "20")  # 512 synthetic images, batch 128: 80 steps, a record every 10
    click(page, "teacher_start")
    actors, steps, deadline = set(), [], time.monotonic() + 120
    while time.monotonic() < deadline:
        actors |= ray_actor_pids(ray_server.proc.pid)
        step = metric_value(page, "Step")
        if step and (not steps or step != steps[-1]):
            steps.append(step)
        if any("Finished" in t for t in alert_texts(page, "Success")) or alert_texts(page, "Error"):
            break
        time.sleep(0.3)
    screenshot(page, "ray_teacher_finished")
    assert not alert_texts(page, "Error"), alert_texts(page, "Error")
    assert any("Finished" in t for t in alert_texts(page, "Success")), f"the run did not finish; steps seen {steps}"
    assert actors, "no Ray job actor process was seen: the run did not go through Ray"
    assert len(steps) >= 2, f"the live step counter was seen only as {steps}"
    assert len(chart_points(page, "teacher_loss_chart")) >= 2
    freed = time.monotonic() + 15  # the sidebar's counts are polled every 2 s
    while job_counts(page) != {"running": 0, "queued": 0, "max": 1} and time.monotonic() < freed:
        time.sleep(0.5)
    assert job_counts(page) == {"running": 0, "queued": 0, "max": 1}  # the slot is free again
    assert_no_exception(page, "Teacher page on the Ray executor")
