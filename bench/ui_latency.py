"""Answer latency of the oracle app in a real browser: key press -> next question on screen.

Starts `argtree ui` on a database of N trees (default 10,000 of 12 nodes), logs in
in Debian's headless Chromium, answers with the keyboard (T and F in turn: the
path that recomputes trees) and measures, inside the page, the time from the
keydown event to the first animation frame after the new premise is in the DOM.
The baseline is the same measurement in the same run on a 20-tree database;
the ratio says how much the big store costs.

    python bench/ui_latency.py                          # 10k trees, 50 answers (builds the DB: a few minutes)
    python bench/ui_latency.py --trees 500 --answers 20 # quick
    python bench/ui_latency.py --db /tmp/ui10k.db       # keep/reuse the big database between runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oracle_ui import demo, testing  # noqa: E402

PROBE = """() => {
  window.__lat = {t0: null, t1: null, old: null};
  const cur = () => { const e = document.querySelector('[data-testid="premise"]'); return e ? e.innerText : null; };
  document.addEventListener('keydown', () => {
    window.__lat = {t0: performance.now(), t1: null, old: cur()};
  }, true);
  new MutationObserver(() => {
    const L = window.__lat;
    if (L.t0 === null || L.t1 !== null || L.pending) return;
    const now = cur();
    if (now !== null && now !== L.old) {
      L.pending = true;
      requestAnimationFrame(() => { L.t1 = performance.now(); });
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def build(path: Path, n_trees: int, n_nodes: int) -> tuple[str, float]:
    """A migrated, seeded SQLite database at ``path`` (reused if it holds the same build)."""
    url = f"sqlite:///{path}"
    stamp = path.with_suffix(".json")
    want = {"trees": n_trees, "nodes": n_nodes}
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()).get("build") == want:
        return url, json.loads(stamp.read_text())["seconds"]
    for f in path.parent.glob(path.name + "*"):
        f.unlink()
    t = time.perf_counter()
    demo.seed(url, n_trees, n_nodes)
    seconds = time.perf_counter() - t
    from argtree.store.db import get_engine

    get_engine(url).dispose()
    stamp.write_text(json.dumps({"build": want, "seconds": seconds}))
    return url, seconds


def measure(url: str, home: Path, answers: int, warmup: int = 3, user=("alice", "alice-pass-1")) -> list[float]:
    """Latencies (ms) of ``answers`` keyboard answers after ``warmup`` unmeasured ones."""
    from playwright.sync_api import sync_playwright

    out: list[float] = []
    with testing.serve(url, home=home) as base, sync_playwright() as p:
        browser = testing.launch(p)
        page = browser.new_page(viewport={"width": 1360, "height": 960})
        testing.login(page, base, *user)
        testing.premise(page)
        page.evaluate(PROBE)
        for i in range(warmup + answers):
            page.keyboard.press("T" if i % 2 == 0 else "F")
            try:
                page.wait_for_function("() => window.__lat.t1 !== null", timeout=30_000, polling=10)
            except Exception:
                page.screenshot(path=str(home / "ui-latency-timeout.png"), full_page=True)
                raise RuntimeError(f"answer {i}: no new question within 30 s; page says: "
                                   f"{page.locator('body').inner_text()[:1500]!r}") from None
            ms = page.evaluate("() => window.__lat.t1 - window.__lat.t0")
            if i >= warmup:
                out.append(ms)
        browser.close()
    return out


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(xs: list[float]) -> dict:
    return {"n": len(xs), "p50_ms": round(statistics.median(xs), 1), "p95_ms": round(percentile(xs, 0.95), 1),
            "max_ms": round(max(xs), 1), "mean_ms": round(statistics.fmean(xs), 1)}


def run(n_trees: int = 10_000, answers: int = 50, *, n_nodes: int = 12, baseline_trees: int = 20,
        db: Path | None = None, workdir: Path | None = None) -> dict:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="ui-latency-"))
    workdir.mkdir(parents=True, exist_ok=True)
    big_path = Path(db) if db else workdir / f"ui-{n_trees}.db"
    big_url, build_s = build(big_path, n_trees, n_nodes)
    small_url, _ = build(workdir / f"ui-base-{baseline_trees}.db", baseline_trees, n_nodes)
    # Measure on copies' own users: each run answers as a fresh account so the big DB can be reused.
    user = f"bench{int(time.time() * 1000) % 10**9}"
    demo.add_users(big_url, [(user, "bench-password", False)])
    demo.add_users(small_url, [(user, "bench-password", False)])
    base = summary(measure(small_url, workdir, answers, user=(user, "bench-password")))
    big = summary(measure(big_url, workdir, answers, user=(user, "bench-password")))
    return {"trees": n_trees, "nodes_per_tree": n_nodes, "answers": answers, "build_seconds": round(build_s, 1),
            "baseline_trees": baseline_trees, "baseline": base, "big": big,
            "ratio_p95": round(big["p95_ms"] / base["p95_ms"], 2), "ratio_p50": round(big["p50_ms"] / base["p50_ms"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=12)
    ap.add_argument("--answers", type=int, default=50)
    ap.add_argument("--baseline-trees", type=int, default=20)
    ap.add_argument("--db", type=Path, default=None, help="SQLite file for the big database (built once, reused)")
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    if testing.chromium_path() is None:
        sys.exit("Debian's chromium is not installed: run `make services`")
    os.environ.setdefault("ARGTREE_UI_SECRET", testing.SECRET)
    res = run(ns.trees, ns.answers, n_nodes=ns.nodes, baseline_trees=ns.baseline_trees, db=ns.db)
    if ns.json:
        print(json.dumps(res))
        return
    b, g = res["baseline"], res["big"]
    print(f"key press -> next question visible, {res['answers']} answers each (Chromium, SQLite)")
    print(f"  baseline {res['baseline_trees']:>6} trees: p50 {b['p50_ms']:7.1f} ms  p95 {b['p95_ms']:7.1f} ms  "
          f"max {b['max_ms']:7.1f} ms")
    print(f"  store    {res['trees']:>6} trees: p50 {g['p50_ms']:7.1f} ms  p95 {g['p95_ms']:7.1f} ms  "
          f"max {g['max_ms']:7.1f} ms   (built in {res['build_seconds']} s)")
    print(f"  ratio big/baseline: p50 x{res['ratio_p50']}, p95 x{res['ratio_p95']}   target p95 <= 300 ms: "
          f"{'met' if g['p95_ms'] <= 300 else 'MISSED'}")


if __name__ == "__main__":
    main()
