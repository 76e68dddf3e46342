"""Language-model lab speed: the teacher's time to a good validation loss, and the page's default demo.

Run: ``python bench/lm.py [--threads 1] [--skip-teacher]``

1. Teacher: ``TEACHER_TRAIN`` (the shipped teacher's recipe) from scratch; wall time of training
   (evaluations included, as on the page) and the final validation bits per character, with samples.
   Target: ≤ 60 s, and below ``GOOD_BPC``.
2. Demo: the page's default "Distil: KD vs scratch" (shipped teacher, ``STUDENT_TRAIN``, both students
   interleaved, as the job runs them). Target: ≤ 30 s.
3. The same demo from the page in headless Chromium (the shipped teacher on a synthetic-data server
   is the same: the lab's data is the shipped names list): click → "Finished.", and the live view's
   redraws per second while it trains. Targets: ≤ 30 s and ≥ 2 updates/s.
The machine may be shared: the load average is printed; treat the figures as noisy.
"""
from __future__ import annotations

import argparse
import tempfile
import time

from _util import machine_line, setup_threads, verdict

from kdviz.lm.jobs import lm_distill_job
from kdviz.lm.runs import TEACHER_TRAIN, real_names, train_teacher
from kdviz.lm.train import evaluate_bpc, sample

GOOD_BPC = 2.85  # measured: an add-one bigram model scores 3.43 bits/char on these validation names; uniform log2(27) = 4.75


def bench_teacher() -> list[str]:
    model, run = train_teacher(TEACHER_TRAIN)
    t0 = time.perf_counter()
    for _ in run:
        pass
    wall = time.perf_counter() - t0
    bpc = evaluate_bpc(model, real_names(None)[1])
    print(f"teacher: {TEACHER_TRAIN.steps} steps in {wall:.1f} s, validation {bpc:.3f} bits/char; samples: {', '.join(sample(model, n=10))}")
    return [verdict("teacher training time", wall, 60, " s", higher_is_better=False),
            verdict("teacher validation bits/char", bpc, GOOD_BPC, "", higher_is_better=False)]


def bench_demo() -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        result = next(e for e in lm_distill_job({"out_dir": folder}) if e["type"] in ("result", "error"))
        wall = time.perf_counter() - t0
    if result["type"] == "error":
        raise SystemExit(f"demo failed: {result['text']}")
    bpc = ", ".join(f"{k} {v:.3f}" for k, v in result["val_bpc"].items())
    print(f"demo: distilled + scratch on {result['train_n']} names in {wall:.1f} s (training {result['train_s']:.1f} s); bits/char: {bpc}")
    return [verdict("page demo, both students", wall, 30, " s", higher_is_better=False)]


def bench_page() -> list[str]:
    """The same demo started from the page in headless Chromium: click → "Finished.", and how often the
    live view redrew while it trained (the live caption's update counter, read every second)."""
    import re
    import sys
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tests" / "browser"))
    from browser_support import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, prime, server_env
    from ui_actions import click, open_page

    live = re.compile(r"live view: every [\d.]+ s.*?update (\d+)")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        server = StreamlitServer(root / "app.py", server_env(Path(tmp) / "runs"), Path(tmp) / "server.log").start()
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_page(page, server.url, prime(browser, server.url)["Language models"])
            t0, counts = time.perf_counter(), []
            click(page, "lm_distill_start")
            while time.perf_counter() - t0 < 300:
                text = page.locator("[data-testid='stMain']").inner_text()
                if "Finished." in text:
                    break
                match = live.search(text)
                if match:
                    counts.append((time.perf_counter(), int(match.group(1))))
                time.sleep(1.0)
            wall = time.perf_counter() - t0
            browser.close()
        finally:
            server.stop()
    rate = (counts[-1][1] - counts[0][1]) / (counts[-1][0] - counts[0][0]) if len(counts) >= 2 else 0.0
    print(f"page: click → Finished in {wall:.1f} s; live view {rate:.2f} updates/s over {len(counts)} readings")
    return [verdict("page demo in the browser, click → Finished", wall, 30, " s", higher_is_better=False),
            verdict("live view while training", rate, 2.0, " updates/s")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-teacher", action="store_true")
    parser.add_argument("--skip-browser", action="store_true", help="no headless-Chromium run of the page")
    args = parser.parse_args()
    setup_threads(args.threads)
    print(machine_line(args.threads))
    lines = ([] if args.skip_teacher else bench_teacher()) + bench_demo() + ([] if args.skip_browser else bench_page())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
