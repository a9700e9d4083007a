"""The dashboard in a REAL headless Chromium against a real collector fed over
gRPC: sign in with a token, see the summary and the drawn timeline, and make
sure hostile window titles and app names render as text."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from http_support import IDLE, activity, window
from worklens.v1 import agent_pb2

pytestmark = pytest.mark.system

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT = Path("/tmp/worklens-dashboard.png")
DAY = (datetime.now(UTC) - timedelta(days=1)).date()
T0 = int(datetime(DAY.year, DAY.month, DAY.day, 9, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000
EVIL_TITLE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> =cmd|calc'
EVIL_APP = "<b>bold</b>"
EVIL_PROC = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def data(col):
    admin = col.token("admin")
    rules = [{"app": "^code$", "category": "Development", "productivity": "productive"},
             {"app": "slack", "category": "Chat", "productivity": "unproductive"}]
    assert col.request("PUT", "/api/v1/rules", admin, json={"rules": rules}).status_code == 200
    a = col.enroll_agent(hostname="ws-design")
    b = col.enroll_agent(hostname="ws-ops")
    col.send(a, "alice", [window(T0, 3 * 3600, "code", "worklens - main.py"),
                          window(T0 + 180 * MIN, 45 * 60, "firefox", EVIL_TITLE),
                          window(T0 + 225 * MIN, 30 * 60, EVIL_APP, "fine")],
             [activity(T0, 150 * 60, keys=900), activity(T0 + 150 * MIN, 30 * 60, IDLE),
              activity(T0 + 180 * MIN, 75 * 60, clicks=40)], hostname="ws-design")
    col.send(b, "bob", [window(T0 + 60 * MIN, 2 * 3600, "slack", "general")],
             [activity(T0 + 60 * MIN, 2 * 3600)], hostname="ws-ops")
    col.send(a, "alice", processes=[
        proc(T0 + MIN, "code", "alice", 3000.0, 400 << 20),
        proc(T0 + 2 * MIN, "code", "alice", 723.0, 512 << 20),
        proc(T0 + MIN, "firefox", "alice", 42.5, 1536 << 20),
        proc(T0 + MIN, EVIL_PROC, "root", 1.0, 10 << 20)], hostname="ws-design")
    return {"a": a.agent_id, "viewer": col.token("viewer", "dashboard")}


def proc(at_ms: int, name: str, user: str, cpu_seconds: float, rss: int
         ) -> agent_pb2.ProcessSample:
    return agent_pb2.ProcessSample(time_ms=at_ms, pid=42, name=name, user=user, rss_bytes=rss,
                                   cpu_seconds=cpu_seconds, interval_ms=60_000)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1400,1500",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, predicate, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))


def table(driver, table_id: str) -> list[list[str]]:
    """The body cells' text, read in one script call (the page re-renders tables)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(`#${arguments[0]} tbody tr`))"
        ".map(tr => Array.from(tr.cells).map(td => td.textContent.trim()));", table_id)


def sign_in(driver, col, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(col.url + "/")
    wait_for(driver, lambda d: d.find_element(By.ID, "token").is_displayed())
    privacy = driver.find_element(By.ID, "privacy").text
    assert "Only counts and durations are collected" in privacy
    assert "never records which keys" in privacy
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()


def test_dashboard_shows_summary_timeline_and_renders_data_as_text(col, data, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, col, data["viewer"])
    day = DAY.isoformat()
    browser.execute_script(
        "document.getElementById('from').value = arguments[0];"
        "document.getElementById('to').value = arguments[0];"
        "document.getElementById('tz').value = 'UTC';"
        "document.getElementById('tl-date').value = arguments[0];", day)
    browser.find_element(By.CSS_SELECTOR, "#range button").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "status").text.startswith(
        f"{day} to {day} (UTC)"))

    by_app = {r[0]: r[1:3] for r in table(browser, "by-app")}
    # code: 09:00-11:30 active, 11:30-12:00 idle; firefox 12:00-12:45 active;
    # slack (bob) 10:00-12:00 active; the HTML-looking app 12:45-13:15 active.
    assert by_app == {"code": ["2:30", "0:30"], "slack": ["2:00", "0:00"],
                      "firefox": ["0:45", "0:00"], EVIL_APP: ["0:30", "0:00"]}
    by_user = {r[0]: r for r in table(browser, "by-user")}
    assert by_user["alice"][1:3] == ["3:45", "0:30"]
    assert "67% productive" in by_user["alice"][3]      # 2:30 of 3:45 is code
    assert "0% productive" in by_user["bob"][3]
    agents = {r[1] for r in table(browser, "agents")}
    assert {"ws-design", "ws-ops"} <= agents

    browser.execute_script("document.getElementById('tl-agent').value = arguments[0];",
                           data["a"])
    browser.find_element(By.CSS_SELECTOR, "#timeline-form button").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tl-windows .seg")) == 3)
    segs = browser.find_elements(By.CSS_SELECTOR, "#tl-windows .seg")
    track = browser.find_element(By.ID, "tl-windows").rect
    code = segs[0].rect
    # 09:00-12:00 of a 24 h day: starts 37.5% in, 12.5% wide (layout pixels, +-2 px).
    assert code["x"] - track["x"] == pytest.approx(track["width"] * 0.375, abs=2)
    assert code["width"] == pytest.approx(track["width"] * 0.125, abs=2)
    states = [s.get_attribute("class").split()[-1]
              for s in browser.find_elements(By.CSS_SELECTOR, "#tl-activity .seg")]
    assert states == ["active", "idle", "active"]

    browser.find_element(By.CSS_SELECTOR, "#timeline details summary").click()
    spans = table(browser, "tl-spans")
    assert [r[2] for r in spans] == ["code", "firefox", EVIL_APP]
    assert spans[0][:2] == ["09:00:00", "3:00"]
    assert spans[1][3] == EVIL_TITLE                      # shown as text...
    assert browser.execute_script("return window.__xss") is None   # ...never run

    # code: 3000 + 723 s = 1:02:03 of CPU, peak 512 MiB; firefox peaks at 1.5 GiB.
    assert table(browser, "tl-procs") == [["code", "alice", "1:02:03", "512.0 MB"],
                                          ["firefox", "alice", "42.5 s", "1536.0 MB"],
                                          [EVIL_PROC, "root", "1.0 s", "10.0 MB"]]
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main b, main script")
    SCREENSHOT.unlink(missing_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_bad_token_is_refused_with_a_message(col, data, browser):
    from selenium.webdriver.common.by import By

    browser.execute_script("sessionStorage.clear()")
    sign_in(browser, col, "wl_nothere_nothing")
    wait_for(browser, lambda d: d.find_element(By.ID, "login-error").text)
    assert "refused" in browser.find_element(By.ID, "login-error").text
    assert browser.execute_script("return sessionStorage.getItem('worklens.token')") is None


def test_page_loads_nothing_from_outside(col, browser):
    from selenium.webdriver.common.by import By

    browser.get(col.url + "/")
    for tag, attr in (("script", "src"), ("link", "href"), ("img", "src")):
        for node in browser.find_elements(By.TAG_NAME, tag):
            url = node.get_attribute(attr) or ""
            assert not url or url.startswith(col.url), url
    resp = col.get("/")
    assert "default-src 'self'" in resp.headers["content-security-policy"]


def test_control_and_bidi_characters_are_shown_not_obeyed(col, data, browser):
    """A title with RIGHT-TO-LEFT OVERRIDE would read as another file name; the page
    shows such characters as <U+XXXX>, in cells and in tooltips alike."""
    browser.get(col.url + "/")
    wait_for(browser, lambda d: d.execute_script("return typeof el === 'function'"))
    cell, tooltip = browser.execute_script(
        "const n = el('td', {title: arguments[0]}, arguments[0]);"
        "return [n.textContent, n.getAttribute('title')];", "invoice\u202efdp.exe\x1b[2J\x00")
    assert cell == tooltip == "invoice<U+202E>fdp.exe<U+001B>[2J<U+0000>"
    assert browser.execute_script("return el('td', {}, 'tab\\tkept').textContent") == "tab\tkept"
