"""The dashboard's own API calls over a fleet, and its first paint in a real browser.

    python benchmarks/dashboard.py --agents 1000 --days 30 --spans 300 --data-dir /tmp/wl-bench
    python benchmarks/dashboard.py --agents 50 --days 7 --spans 100        # a quick run

1. Fill (or reuse, with ``--data-dir``) the same synthetic store as
   ``benchmarks/query.py`` (same fill code, same marker file), then put the
   agents into ``--groups`` groups of equal size (``team-00``...).
2. Start ``worklens-collector serve`` on it and time, ``--repeat`` times each
   after two warm-ups, every call the dashboard makes for the whole range:
   the overview (summary by day, by group, by app, by category; agents; groups;
   me), the people and agents pages (by user, by agent), a group page (by user
   in one group), the overview of a token scoped to one group, and a day view
   (timeline + processes of one agent-day).
3. Open the dashboard in headless Chromium (selenium, Debian's chromium and
   chromium-driver) signed in as admin and read the page's own performance
   marks: navigation start -> the overview drawn, and -> the people table of
   every person drawn; plus the browser's first contentful paint.

Last line: {"worst_p95_ms": ..., "overview_first_paint_ms": ..., "calls": {...}, ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import requests
from _collector import start_collector
from query import agent_ids, filled_store, log, make_token, p95

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "protos")]


def assign_groups(db_url: str, groups: int) -> list[str]:
    """Agents in equal groups team-00..: by enrollment order, replacing any groups."""
    from worklens.collector.store import open_store

    names = [f"team-{i:02d}" for i in range(groups)]
    store = open_store(db_url)
    try:
        def write(conn) -> None:
            keys = [k for (k,) in conn.execute("SELECT id FROM agents ORDER BY id")]
            conn.execute("DELETE FROM agent_groups")
            conn.executemany("INSERT INTO agent_groups (agent, grp) VALUES (?, ?)",
                             [(k, names[i * groups // len(keys)]) for i, k in enumerate(keys)])
        store.write(write)
        from worklens.collector.access.tokens import create_token
        scoped = create_token(store, "viewer", "benchmark-team-viewer", groups=[names[0]])[1]
        return [*names, scoped]
    finally:
        store.close()


def time_calls(url: str, admin: str, scoped: str, span: dict, days: list[date],
               agents: list[str], repeat: int) -> dict[str, dict[str, float]]:
    rng = random.Random(17)
    as_admin = requests.Session()
    as_admin.headers["Authorization"] = f"Bearer {admin}"
    as_scoped = requests.Session()
    as_scoped.headers["Authorization"] = f"Bearer {scoped}"
    calls = {
        "overview_by_day": (as_admin, lambda: ("/api/v1/summary", {**span, "by": "day"})),
        "overview_by_group": (as_admin, lambda: ("/api/v1/summary", {**span, "by": "group"})),
        "overview_by_app": (as_admin, lambda: ("/api/v1/summary", {**span, "by": "app"})),
        "overview_by_category": (as_admin, lambda: ("/api/v1/summary",
                                                    {**span, "by": "category"})),
        "agents": (as_admin, lambda: ("/api/v1/agents", {"tz": "UTC"})),
        "groups": (as_admin, lambda: ("/api/v1/groups", {})),
        "me": (as_admin, lambda: ("/api/v1/me", {})),
        "people_by_user": (as_admin, lambda: ("/api/v1/summary", {**span, "by": "user"})),
        "agents_by_agent": (as_admin, lambda: ("/api/v1/summary", {**span, "by": "agent"})),
        "group_page_by_user": (as_admin, lambda: ("/api/v1/summary", {
            **span, "by": "user", "group": f"team-{rng.randrange(10):02d}"})),
        "scoped_overview_by_day": (as_scoped, lambda: ("/api/v1/summary",
                                                       {**span, "by": "day"})),
        "scoped_by_group": (as_scoped, lambda: ("/api/v1/summary", {**span, "by": "group"})),
        "scoped_by_app": (as_scoped, lambda: ("/api/v1/summary", {**span, "by": "app"})),
        "scoped_by_category": (as_scoped, lambda: ("/api/v1/summary",
                                                   {**span, "by": "category"})),
        "day_timeline": (as_admin, lambda: ("/api/v1/timeline", {
            "agent": rng.choice(agents), "date": rng.choice(days).isoformat(), "tz": "UTC"})),
        "day_processes": (as_admin, lambda: ("/api/v1/processes", {
            "agent": rng.choice(agents), "date": rng.choice(days).isoformat(), "tz": "UTC"})),
    }
    results = {}
    for name, (session, make) in calls.items():
        samples, size = [], 0
        for i in range(repeat + 2):
            path, params = make()
            t = time.perf_counter()
            resp = session.get(url + path, params=params, timeout=300)
            elapsed = (time.perf_counter() - t) * 1000
            if resp.status_code != 200:
                raise SystemExit(f"{name}: HTTP {resp.status_code}: {resp.text[:300]}")
            size = len(resp.content)
            if i >= 2:
                samples.append(elapsed)
        results[name] = {"p50_ms": round(statistics.median(samples), 1),
                         "p95_ms": round(p95(samples), 1), "response_kb": round(size / 1024, 1)}
        log(f"  {name}: p50 {results[name]['p50_ms']} ms, p95 {results[name]['p95_ms']} ms "
            f"({results[name]['response_kb']} KB)")
    return results


def first_paint(url: str, admin: str, span: dict, runs: int) -> dict[str, float]:
    """Median over ``runs`` loads of: navigation start -> overview drawn (the page's
    performance mark), -> people table drawn, and first contentful paint."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tempfile.mkdtemp(prefix="wl-bench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    query = "&".join(f"{k}={v}" for k, v in span.items())
    out: dict[str, list[float]] = {"overview": [], "people": [], "fcp": []}
    try:
        driver.get(url + "/")
        driver.execute_script("sessionStorage.setItem('worklens.token', arguments[0])", admin)
        for _ in range(runs + 1):   # the first load warms the collector's caches
            for view in ("overview", "people"):
                driver.get(f"{url}/?run={time.time()}#/{view}?{query}")
                mark = f"worklens:{view}"
                WebDriverWait(driver, 120, poll_frequency=0.05).until(
                    lambda d, mark=mark: d.execute_script(
                        "return performance.getEntriesByName(arguments[0]).length", mark))
                out[view].append(driver.execute_script(
                    "return performance.getEntriesByName(arguments[0])[0].startTime", mark))
                if view == "overview":
                    out["fcp"].append(driver.execute_script(
                        "const p = performance.getEntriesByName('first-contentful-paint');"
                        "return p.length ? p[0].startTime : null") or 0)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return {f"{k}_ms": round(statistics.median(v[1:]), 1) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--spans", type=int, default=300, help="window spans per agent-day")
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs of each call")
    parser.add_argument("--paint-runs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, help="keep (and reuse) the filled store here")
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="worklens-dashboard-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{data_dir / 'worklens.db'}"
    try:
        first_day, _fill_s = filled_store(data_dir, db_url, args)
        days = [first_day + timedelta(days=d) for d in range(args.days)]
        span = {"from": days[0].isoformat(), "to": days[-1].isoformat(), "tz": "UTC"}
        *_names, scoped = assign_groups(db_url, args.groups)
        log(f"{args.agents} agents in {args.groups} groups")
        collector = start_collector(data_dir)
        proc, url = collector.proc, collector.http_url
        try:
            admin = make_token(db_url, "admin")
            log(f"collector at {url}; timing the dashboard's calls, {args.repeat} runs each")
            calls = time_calls(url, admin, scoped, span, days, agent_ids(db_url), args.repeat)
            log(f"first paint in headless Chromium, median of {args.paint_runs} loads")
            paint = first_paint(url, admin, span, args.paint_runs)
            log(f"  overview drawn {paint['overview_ms']} ms after navigation start, people "
                f"table {paint['people_ms']} ms, first contentful paint {paint['fcp_ms']} ms")
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    worst = max(calls, key=lambda k: calls[k]["p95_ms"])
    print(json.dumps({
        "worst_p95_ms": calls[worst]["p95_ms"], "worst_call": worst,
        "overview_first_paint_ms": paint["overview_ms"],
        "people_first_paint_ms": paint["people_ms"],
        "first_contentful_paint_ms": paint["fcp_ms"], "agents": args.agents, "days": args.days,
        "spans_per_agent_day": args.spans, "groups": args.groups, "calls": calls,
    }))


if __name__ == "__main__":
    main()
