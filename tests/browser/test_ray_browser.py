"""The app with ``KDVIZ_EXECUTOR=ray`` in headless Chromium, on a Ray head started for this module
(``ray_cluster.py``), as a deployment runs it (issue #16; the executor contract is checked headless
in ``tests/test_ray_executor.py``):

- a Teacher run goes through a Ray actor, trains live, and its slot is freed when it ends;
- two Streamlit servers (replicas) on that cluster share one queue: with one slot in the cluster,
  a run started on the second server waits at "Queued — position 1" while the first server's
  runs, and starts when it is stopped.

Screenshots: artifacts/screenshots/ray_teacher_finished.png, ray_second_replica_queued.png."""
from __future__ import annotations

import time

import psutil
import pytest
from browser_support import ARTIFACTS, ROOT, StreamlitServer, alert_texts, assert_no_exception, prime, screenshot, server_env
from ray_cluster import RayHead
from ui_actions import chart_points, click, job_counts, metric_value, open_page, set_text, wait_until

pytest.importorskip("ray", reason="ray (requirements-optional.txt) is not installed")
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ray_head():
    head = RayHead(cpus=2).start()
    yield head
    head.stop()


def replica(head: RayHead, runs, name: str) -> StreamlitServer:
    """One Streamlit server on the head's cluster; every replica of this module shares one broker (one queue)."""
    env = server_env(runs, KDVIZ_EXECUTOR="ray", KDVIZ_MAX_JOBS="1", KDVIZ_RAY_BROKER=f"kdviz-test-{head.port}", **head.env)
    return StreamlitServer(ROOT / "app.py", env, ARTIFACTS / f"server-ray-{name}.log")


@pytest.fixture(scope="module")
def ray_server(browser_available, ray_head, tmp_path_factory):
    server = replica(ray_head, tmp_path_factory.mktemp("ray-runs"), "a")
    server.start()
    yield server
    server.stop()


def ray_actor_pids(head: RayHead) -> set[int]:
    """Processes of the head that run a kdviz job actor (Ray names a busy worker ``ray::JobActor...``)."""
    found = set()
    for root in head.roots():
        try:
            for proc in psutil.Process(root).children(recursive=True):
                if "JobActor" in " ".join(proc.cmdline()):
                    found.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def test_a_teacher_run_trains_in_a_ray_actor(browser, ray_server, ray_head):
    path = prime(browser, ray_server.url)["Teacher"]
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_page(page, ray_server.url, path)
    set_text(page, "teacher_epochs", "20")  # 512 synthetic images, batch 128: 80 steps, a record every 10
    click(page, "teacher_start")
    actors, steps, deadline = set(), [], time.monotonic() + 120
    while time.monotonic() < deadline:
        actors |= ray_actor_pids(ray_head)
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
    assert max(chart_points(page, "teacher_loss_chart"), default=0) >= 2  # a curve, not a point
    freed = time.monotonic() + 15  # the sidebar's counts are polled every 2 s
    while job_counts(page) != {"running": 0, "queued": 0, "max": 1} and time.monotonic() < freed:
        time.sleep(0.5)
    assert job_counts(page) == {"running": 0, "queued": 0, "max": 1}  # the slot is free again
    assert_no_exception(page, "Teacher page on the Ray executor")


def test_two_replicas_share_the_clusters_one_slot(browser, ray_server, ray_head, tmp_path_factory):
    second = replica(ray_head, tmp_path_factory.mktemp("ray-runs-b"), "b")
    second.start()
    try:
        pages = []
        for server in (ray_server, second):
            path = prime(browser, server.url)["Teacher"]
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            open_page(page, server.url, path)
            set_text(page, "teacher_epochs", "50")  # the most the box allows: 200 steps
            assert page.locator(".st-key-teacher_epochs input").first.input_value() == "50.00"
            pages.append(page)
        first, other = pages
        click(first, "teacher_start")
        wait_until(first, lambda: "● running" in main_text(first), 90, "the first replica's run never started")
        click(first, "teacher_pause")  # paused, it keeps the slot (for the pause timeout, 60 s, while others wait)
        wait_until(first, lambda: "Paused at step" in main_text(first), 30, "the first replica's run did not pause")
        click(other, "teacher_start")
        wait_until(other, lambda: "Queued — position 1" in main_text(other), 30,
                   "the second replica did not queue behind the first replica's run")
        screenshot(other, "ray_second_replica_queued")
        assert job_counts(other) == {"running": 1, "queued": 1, "max": 1}  # the cluster's counts, seen from B
        click(first, "teacher_stop")
        wait_until(other, lambda: "● running" in main_text(other), 60,
                   "the second replica's run did not start when the first one's stopped")
        click(other, "teacher_stop")
        for page in pages:
            assert_no_exception(page, "Teacher page on a Ray replica")
    finally:
        second.stop()


def main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()
