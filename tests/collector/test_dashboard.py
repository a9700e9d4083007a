"""The dashboard in a REAL headless Chromium against a real collector fed over
gRPC by agents in groups: sign in, the overview's trends and tables, a scoped
token that sees nothing of another team, drill-down with working back button,
the zoomable timeline and its complete span list, CSV downloads, the rules
editor, error states, a phone-width screen, and hostile titles shown as text.
Every assertion is on what a person reads or can click, never on pixels."""

from __future__ import annotations

import csv
import io
import shutil
import time
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
ENG_MARKERS = ("erin", "vim-eng", "ENGSECRET", "ws-eng")
RULES = [{"app": "^code$", "category": "Development", "productivity": "productive"},
         {"app": "slack", "category": "Chat", "productivity": "unproductive"},
         {"app": "^zoom$", "category": "Chat", "productivity": "unproductive",
          "passive": "productive", "passive_category": "Meetings"}]
DASH, NEXT = "\u2013", "Next \u203a"   # the page's en dash and pager arrow
SHORT_SPANS = 240   # 15 s each from 14:00: one merged mark at 24 h, separate at minutes


def cli_token(col, role: str, *groups: str) -> str:
    args = ["token", "create", "--role", role, "--name", f"{role} {' '.join(groups)}".strip()]
    for group in groups:
        args += ["--group", group]
    done = col.cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def data(col):
    admin = col.token("admin", "ops admin")
    assert col.request("PUT", "/api/v1/rules", admin, json={"rules": RULES}).status_code == 200
    design = col.enroll_agent(secret=cli_token(col, "enroll", "design"), hostname="ws-design")
    eng = col.enroll_agent(secret=cli_token(col, "enroll", "eng"), hostname="ws-eng")
    sales = col.enroll_agent(secret=cli_token(col, "enroll", "sales"), hostname="ws-sales")
    t14 = T0 + 5 * 60 * MIN
    col.send(design, "alice", [window(T0, 3 * 3600, "code", "worklens - main.py"),
                               window(T0 + 180 * MIN, 45 * 60, "firefox", EVIL_TITLE),
                               window(T0 + 225 * MIN, 30 * 60, EVIL_APP, "fine")]
             + [window(t14 + i * 15_000, 15, ("term", "code")[i % 2], f"step {i}")
                for i in range(SHORT_SPANS)],
             [activity(T0, 150 * 60, keys=900), activity(T0 + 150 * MIN, 30 * 60, IDLE),
              activity(T0 + 180 * MIN, 75 * 60, clicks=40), activity(t14, 3600)],
             hostname="ws-design")
    col.send(design, "alice", processes=[
        proc(T0 + MIN, "code", "alice", 3000.0, 400 << 20),
        proc(T0 + 2 * MIN, "code", "alice", 723.0, 512 << 20),
        proc(T0 + MIN, EVIL_PROC, "root", 1.0, 10 << 20)], hostname="ws-design")
    col.send(eng, "erin", [window(T0, 2 * 3600, "vim-eng", "ENGSECRET roadmap")],
             [activity(T0, 2 * 3600)], hostname="ws-eng")
    col.send(sales, "sam", [window(T0 + 60 * MIN, 3600, "slack", "deals"),
                            window(T0 + 120 * MIN, 30 * 60, "zoom", "standup")],
             [activity(T0 + 60 * MIN, 3600),   # then a call, hands off the keyboard
              agent_pb2.ActivitySpan(start_ms=T0 + 120 * MIN, duration_ms=30 * MIN,
                                     state=agent_pb2.ACTIVITY_STATE_PASSIVE,
                                     reason=agent_pb2.PASSIVE_REASON_CALL)],
             hostname="ws-sales")
    bulk_secret = cli_token(col, "enroll", "sales/bulk")
    for i in range(60):   # enough people for two pages of the people table
        agent = col.enroll_agent(secret=bulk_secret, hostname=f"ws-bulk-{i:02d}")
        col.send(agent, f"user-{i:02d}", [window(T0 + i * MIN, 60 + i, "libreoffice", "q4")],
                 [activity(T0 + i * MIN, 60 + i)], hostname=f"ws-bulk-{i:02d}")
    return {"design": design.agent_id, "eng": eng.agent_id, "sales": sales.agent_id,
            "admin": admin, "viewer": col.token("viewer", "everyone"),
            "sales_viewer": cli_token(col, "viewer", "sales"),
            "sales_exporter": cli_token(col, "exporter", "sales")}


def proc(at_ms: int, name: str, user: str, cpu_seconds: float, rss: int
         ) -> agent_pb2.ProcessSample:
    return agent_pb2.ProcessSample(time_ms=at_ms, pid=42, name=name, user=user, rss_bytes=rss,
                                   cpu_seconds=cpu_seconds, interval_ms=60_000)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
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
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, predicate, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))


def text_of(driver, element_id: str) -> str:
    return driver.execute_script(
        "const n = document.getElementById(arguments[0]); return n ? n.innerText : null;",
        element_id)


def wait_text(driver, element_id: str, needle: str, timeout: float = 30) -> str:
    wait_for(driver, lambda d: needle in (text_of(d, element_id) or ""), timeout)
    return text_of(driver, element_id)


def table(driver, table_id: str) -> list[list[str]]:
    """The body cells' text, read in one script call (the page re-renders tables)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(`#${arguments[0]} tbody tr`))"
        ".map(tr => Array.from(tr.cells).map(td => td.innerText.trim()));", table_id)


def page_text(driver) -> str:
    return driver.execute_script("return document.body.innerText")


def sign_in(driver, col, token: str, route: str = "") -> None:
    from selenium.webdriver.common.by import By

    driver.get(col.url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(col.url + "/" + route)
    wait_for(driver, lambda d: d.find_element(By.ID, "token").is_displayed())
    privacy = driver.find_element(By.ID, "privacy").text
    assert "Only counts and durations are collected" in privacy
    assert "never records which keys" in privacy
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "nav").is_displayed()
             and "(" in (text_of(d, "who") or ""))


def show(driver, col, route: str) -> None:
    """Open a route for DAY in UTC and wait until its view is drawn."""
    sep = "&" if "?" in route else "?"
    driver.get(f"{col.url}/#/{route}{sep}from={DAY}&to={DAY}&tz=UTC")
    wait_for(driver, lambda d: d.execute_script(
        "return (!!document.getElementById('view-title') || !document.getElementById('error')"
        ".hidden) && document.querySelectorAll('.chart-holder').length === "
        "document.querySelectorAll('.chart-holder svg').length"))   # charts drawn too


def test_overview_shows_trends_groups_and_top_lists(col, data, browser):
    sign_in(browser, col, data["admin"])
    assert "(admin)" in text_of(browser, "who")
    show(browser, col, "overview")
    assert text_of(browser, "view-title") == "Overview of the fleet"
    assert text_of(browser, "status") == f"{DAY} to {DAY} (UTC)"
    kpis = page_text(browser)
    assert "Active\n" in kpis and "Productive\n" in kpis
    by_group = {r[0]: r[1:5] for r in table(browser, "by-group")}
    # (active, passive, idle, productivity)
    # design: code 2:30 active + 0:30 idle, firefox 0:45, <b> 0:30, the hour of short spans
    assert by_group["design"][:3] == ["4 h 45 min", "0 s", "30 min"]
    assert by_group["eng"][:3] == ["2 h 00 min", "0 s", "0 s"]
    # sales: slack 1 h (unproductive), a 30 min call in zoom (passive, productive by rule)
    assert by_group["sales"][:3] == ["1 h 00 min", "30 min", "0 s"]
    assert by_group["sales"][3].endswith("33% productive")
    assert "sales/bulk" in by_group
    apps = {r[0]: r[1] for r in table(browser, "top-apps")}
    assert apps["code"] == "3 h 00 min" and apps[EVIL_APP] == "30 min"
    categories = {r[0]: r[1] for r in table(browser, "top-categories")}
    assert categories["Development"] == "productive"
    for chart in ("trend-day", "trend-week"):
        titles = browser.execute_script(
            "return Array.from(document.querySelectorAll(`#${arguments[0]} svg .bar-group title`))"
            ".map(t => t.textContent)", chart)
        assert len(titles) == 1 and "active" in titles[0] and "productive" in titles[0], titles
    assert f"week of {DAY - timedelta(days=DAY.weekday())}" in browser.execute_script(
        "return document.querySelector('#trend-week table').textContent")
    assert "Live view" in text_of(browser, "live-slot")
    assert browser.execute_script("return window.__xss") is None
    assert not browser.find_elements("css selector", "main img, main b, main script")
    SCREENSHOT.unlink(missing_ok=True)
    browser.save_screenshot(str(SCREENSHOT))


def test_a_sales_token_sees_no_eng_data_anywhere(col, data, browser):
    sign_in(browser, col, data["sales_viewer"])
    assert "sees sales" in text_of(browser, "who")
    options = browser.execute_script(
        "return Array.from(document.querySelectorAll('#group option')).map(o => o.textContent)")
    assert options == ["All I may see", "sales", "sales/bulk"]
    for route in ("overview", "people", "agents", "rules", "person/erin",
                  f"day/{data['eng']}/{DAY}", "group/eng"):
        show(browser, col, route)
        # textContent: also what is folded away (tables under "Numbers") and SVG titles
        text = browser.execute_script("return document.body.textContent")
        for marker in (*ENG_MARKERS, data["eng"]):
            if marker in route:
                continue   # what the person typed is echoed in the error, nothing more
            assert marker not in text, (route, marker, text[:500])
    show(browser, col, f"day/{data['eng']}/{DAY}")
    assert "no agent with id" in text_of(browser, "error")
    assert not browser.find_elements("css selector", "#timeline, #tl-spans")
    show(browser, col, "group/eng")
    assert "no group 'eng'" in text_of(browser, "error")
    show(browser, col, "overview")
    assert [r[0] for r in table(browser, "by-group")] == ["sales/bulk", "sales"]
    assert text_of(browser, "view-title") == "Overview of sales"
    assert "Admin" not in text_of(browser, "nav")


def test_drill_down_group_person_day_and_back(col, data, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, col, data["viewer"])
    show(browser, col, "overview")
    browser.find_element(By.LINK_TEXT, "design").click()
    wait_for(browser, lambda d: text_of(d, "view-title") == "Group design")
    assert "#/group/design?" in browser.current_url
    assert [r[0] for r in table(browser, "people")] == ["alice"]
    browser.find_element(By.LINK_TEXT, "alice").click()
    wait_for(browser, lambda d: text_of(d, "view-title") == "alice")
    assert "#/person/alice?" in browser.current_url and "group=design" in browser.current_url
    days = table(browser, "person-days")
    assert days[0][:3] == [DAY.isoformat(), "4 h 45 min", "0 s"] and "ws-design" in days[0][5]
    browser.find_element(By.CSS_SELECTOR, "#person-days a").click()
    wait_for(browser, lambda d: text_of(d, "view-title") == f"ws-design on {DAY}")
    assert f"#/day/{data['design']}/{DAY}?" in browser.current_url
    browser.back()
    wait_for(browser, lambda d: text_of(d, "view-title") == "alice")
    browser.back()
    wait_for(browser, lambda d: text_of(d, "view-title") == "Group design")
    browser.forward()
    wait_for(browser, lambda d: text_of(d, "view-title") == "alice")
    # a bookmark of the day view opens straight there
    browser.get(f"{col.url}/#/day/{data['design']}/{DAY}?from={DAY}&to={DAY}&tz=UTC")
    wait_for(browser, lambda d: text_of(d, "view-title") == f"ws-design on {DAY}")


def test_people_table_searches_sorts_and_pages(col, data, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, col, data["admin"])
    show(browser, col, "people")
    first = table(browser, "people")
    assert len(first) == 50 and first[0][0] == "alice"          # most active first
    assert "63 people" in page_text(browser)
    browser.find_element(By.XPATH, f"//button[normalize-space()='{NEXT}']").click()
    wait_for(browser, lambda d: "Page 2 of 2" in page_text(d))
    assert len(table(browser, "people")) == 13
    browser.find_element(By.CSS_SELECTOR, "#people th button").click()   # sort by person
    wait_for(browser, lambda d: table(d, "people")[0][0] == "alice")
    assert [r[0] for r in table(browser, "people")[:3]] == ["alice", "erin", "sam"]
    # person, active, passive, idle, productivity
    assert table(browser, "people")[2][1:4] == ["1 h 00 min", "30 min", "0 s"]
    search = browser.find_element(By.ID, "people-search")
    search.send_keys("user-4")
    wait_for(browser, lambda d: len(table(d, "people")) == 10)
    assert "10 of 63 people" in page_text(browser)
    assert "q=user-4" in browser.current_url    # the search is part of the URL


def test_timeline_zooms_and_lists_every_span(col, data, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, col, data["viewer"])
    show(browser, col, f"day/{data['design']}/{DAY}")
    label = wait_text(browser, "tl-range", "Showing")
    assert label == f"Showing 00:00{DASH}24:00 (24 h 00 min of 24 h 00 min)"
    spans = 3 + SHORT_SPANS
    marks = browser.find_elements(By.CSS_SELECTOR, "#timeline rect[data-kind='w']")
    merged = browser.find_elements(By.CSS_SELECTOR, "#timeline rect.merged")
    assert merged and len(marks) < spans    # the hour of 15 s spans is merged at 24 h
    for _ in range(5):
        browser.find_element(By.XPATH, "//button[@aria-label='Zoom in']").click()
    label = text_of(browser, "tl-range")
    assert label.endswith("(45 min of 24 h 00 min)"), label
    svg = browser.find_element(By.CSS_SELECTOR, "#timeline svg")
    ActionChains(browser).scroll_to_element(svg).scroll_from_origin(
        __import__("selenium.webdriver.common.actions.wheel_input", fromlist=["ScrollOrigin"])
        .ScrollOrigin.from_element(svg), 0, -300).perform()
    wait_for(browser, lambda d: text_of(d, "tl-range") != label)
    zoomed = text_of(browser, "tl-range")
    assert "min of 24 h" in zoomed and " h " not in zoomed.split("(")[1].split(" of")[0]
    before = zoomed
    ActionChains(browser).click_and_hold(svg).move_by_offset(-200, 0).release().perform()
    wait_for(browser, lambda d: text_of(d, "tl-range") != before)   # dragged later in the day
    svg.send_keys("0")                                            # keyboard: whole day
    wait_for(browser, lambda d: text_of(d, "tl-range").startswith(f"Showing 00:00{DASH}24:00"))
    # zoom on the hour of short spans: they become separate marks with their own tooltip
    browser.execute_script("arguments[0].focus()", svg)
    for _ in range(4):   # 1 h 30 min: a 15 s span is a few pixels wide
        svg.send_keys("+")
    for _ in range(30):   # move right until 14:00 is in view
        if "Showing 14:" in text_of(browser, "tl-range"):
            break
        svg.send_keys(Keys.ARROW_RIGHT)
    wait_for(browser, lambda d: "Showing 14:" in text_of(d, "tl-range"))
    single = [m for m in browser.find_elements(By.CSS_SELECTOR, "#timeline rect.window")
              if m.get_attribute("data-first") == m.get_attribute("data-last")]
    assert len(single) > 10
    ActionChains(browser).move_to_element(single[len(single) // 2]).perform()
    tip = wait_text(browser, "tl-tip", "step ")
    assert ("term" in tip or "code" in tip) and "(15 s)" in tip

    spans_text = text_of(browser, "span-count")
    assert spans_text == f"Spans 1{DASH}100 of {spans}"
    rows = table(browser, "tl-spans")
    assert [r[2] for r in rows[:3]] == ["code", "firefox", EVIL_APP]
    assert rows[0][:2] == ["09:00:00", "3 h 00 min"] and rows[1][3] == EVIL_TITLE
    for page in (2, 3):
        browser.find_element(By.XPATH, "//nav[@aria-label='Span pages']/button[2]").click()
        wait_text(browser, "span-count", f"Spans {(page - 1) * 100 + 1}{DASH}")
    assert text_of(browser, "span-count") == f"Spans 201{DASH}{spans} of {spans}"
    assert len(table(browser, "tl-spans")) == spans - 200
    assert table(browser, "tl-procs")[:2] == [["code", "alice", "1:02:03", "512.0 MB"],
                                              [EVIL_PROC, "root", "1.0 s", "10.0 MB"]]
    assert browser.execute_script("return window.__xss") is None


def test_timeline_marks_passive_time_in_the_class_its_rule_gives_it(col, data, browser):
    """sam's 30 min call in zoom: zoom is Chat/unproductive, its passive time counts as
    Meetings/productive (RULES); the strip under the windows says so."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    sign_in(browser, col, data["viewer"])
    show(browser, col, f"day/{data['sales']}/{DAY}")
    wait_text(browser, "tl-range", "Showing")
    assert "Passive\n30 min" in page_text(browser)
    assert "passive time, by the class it counts as" in page_text(browser)
    marks = browser.find_elements(By.CSS_SELECTOR, "#timeline rect[data-kind='p']")
    assert len(marks) == 1
    assert marks[0].get_attribute("class").split() == ["seg", "pclass", "productive"]
    ActionChains(browser).move_to_element(marks[0]).perform()
    tip = wait_text(browser, "tl-tip", "passive")
    assert tip.split("\n") == ["passive", "Meetings, productive",
                               f"11:00:00{DASH}11:30:00 (30 min)", "in zoom"]
    rows = table(browser, "tl-spans")
    assert [(r[2], r[4]) for r in rows] == [
        ("slack", "Chat (unproductive)"),
        ("zoom", "Chat (unproductive); passive: Meetings (productive)")]
    show(browser, col, f"day/{data['design']}/{DAY}")    # no passive time: no strip
    wait_text(browser, "tl-range", "Showing")
    assert not browser.find_elements(By.CSS_SELECTOR, "#timeline rect[data-kind='p']")
    assert "by the class it counts as" not in page_text(browser)


def test_export_buttons_download_the_scoped_csv(col, data, browser, downloads):
    from selenium.webdriver.common.by import By

    sign_in(browser, col, data["viewer"])
    show(browser, col, "overview")
    assert not browser.find_elements(By.CSS_SELECTOR, ".exports")   # viewer: no exports
    sign_in(browser, col, data["sales_exporter"])
    show(browser, col, "overview")
    for old in downloads.glob("*"):
        old.unlink()
    browser.find_element(By.XPATH, "//div[contains(@class,'exports')]/button[.='daily']").click()
    name = f"worklens-daily-{DAY}-{DAY}.csv"
    wait_for(browser, lambda d: (downloads / name).exists()
             and (downloads / name).stat().st_size > 0)
    time.sleep(0.3)
    rows = list(csv.DictReader(io.StringIO((downloads / name).read_text(encoding="utf-8"))))
    assert len(rows) == 61 and {r["group"] for r in rows} == {"sales", "sales/bulk"}
    assert data["sales"] in {r["agent_id"] for r in rows}
    assert not any(m in (downloads / name).read_text() for m in (*ENG_MARKERS, data["eng"]))


def test_rules_editor_previews_and_saves(col, data, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, col, data["admin"])
    show(browser, col, "rules")
    assert browser.find_element(By.CSS_SELECTOR, "[aria-label='Rule 3 passive category']"
                                ).get_attribute("value") == "Meetings"
    browser.find_element(By.XPATH, "//button[.='Add rule']").click()
    browser.find_element(By.CSS_SELECTOR, "[aria-label='Rule 4 app']").send_keys("firefox")
    browser.find_element(By.CSS_SELECTOR, "[aria-label='Rule 4 category']").send_keys("Browsing")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.CSS_SELECTOR, "[aria-label='Rule 4 class']")
           ).select_by_value("neutral")
    Select(browser.find_element(By.CSS_SELECTOR, "[aria-label='Rule 4 passive class']")
           ).select_by_value("unproductive")
    browser.find_element(By.ID, "rules-preview-btn").click()
    summary = wait_text(browser, "preview-summary", "would change")
    assert summary.startswith("45 min of ")          # firefox's 45 minutes move
    preview = table(browser, "preview-rules")
    assert preview[3] == ["4", "Browsing", "45 min", "45 min", "\u2014"]
    assert preview[0][1:3] == ["Development", "3 h 30 min"]   # 3 h + half of the 15 s spans
    assert preview[2] == ["3", "Chat", "30 min", "0 s", "30 min (0 s reclassified)"]  # the call
    classes = table(browser, "preview-classes")   # code 3 h + the call as Meetings; firefox
    assert classes[:2] == [["productive", "3 h 30 min", "3 h 30 min"],
                           ["neutral", "0 s", "45 min"]]
    assert col.get("/api/v1/rules", data["admin"]).json()["rules"] == RULES   # not saved yet
    browser.find_element(By.ID, "rules-save").click()
    wait_text(browser, "rules-message", "Saved 4 rules")
    saved = col.get("/api/v1/rules", data["admin"]).json()["rules"]
    assert saved[:3] == RULES                        # the passive fields kept through the editor
    assert saved[3] == {"app": "firefox", "category": "Browsing", "productivity": "neutral",
                        "passive": "unproductive"}
    from selenium.webdriver.common.keys import Keys

    browser.find_element(By.CSS_SELECTOR, "[aria-label='Rule 4 category']").send_keys(
        Keys.CONTROL, "a", Keys.BACK_SPACE)    # as a person empties it (input events)
    browser.find_element(By.ID, "rules-save").click()
    wait_text(browser, "rules-message", "rules[3].category")      # a bad rule says which
    assert col.request("PUT", "/api/v1/rules", data["admin"],
                       json={"rules": RULES}).status_code == 200
    sign_in(browser, col, data["viewer"])
    show(browser, col, "rules")
    assert not browser.find_elements(By.ID, "rules-save")          # viewers only read
    assert table(browser, "rules")[0] == ["1", "^code$", "any", "Development", "productive",
                                          "same"]
    assert table(browser, "rules")[2][5] == "Meetings, productive"


def test_admin_creates_a_scoped_token_and_moves_an_agent(col, data, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, col, data["admin"])
    show(browser, col, "admin")
    browser.find_element(By.ID, "new-name").send_keys("lead of design")
    browser.find_element(By.ID, "new-groups").send_keys("design")
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    secret = wait_text(browser, "new-secret", "wl_")
    assert any(r[2] == "lead of design" and r[3] == "design" for r in table(browser, "tokens"))
    assert col.get("/api/v1/me", secret).json()["groups"] == ["design"]
    show(browser, col, "agents")
    field = browser.find_element(By.CSS_SELECTOR, "[aria-label='Groups of ws-sales "
                                                  "(comma-separated)']")
    field.clear()
    field.send_keys("sales, field")
    field.submit()
    wait_for(browser, lambda d: "saved" in page_text(d))
    agents = {a["agent_id"]: a["groups"] for a in col.get("/api/v1/agents",
                                                          data["admin"]).json()["agents"]}
    assert agents[data["sales"]] == ["field", "sales"]
    assert col.request("PUT", f"/api/v1/agents/{data['sales']}/groups", data["admin"],
                       json={"groups": ["sales"]}).status_code == 200


def test_errors_replace_the_numbers(col, data, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, col, data["admin"])
    show(browser, col, "overview")
    assert table(browser, "top-apps")
    tz = browser.find_element(By.ID, "tz")
    tz.clear()
    tz.send_keys("Mars/Olympus")
    browser.find_element(By.CSS_SELECTOR, "#range button").click()
    message = wait_text(browser, "error", "unknown time zone 'Mars/Olympus'")
    assert "Cannot show this view" in message
    assert not browser.find_elements(By.ID, "top-apps")     # no stale numbers beside it
    browser.get(f"{col.url}/#/overview?from={DAY}&to={DAY - timedelta(days=3)}&tz=UTC")
    wait_text(browser, "error", "is after to")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    try:
        browser.get(f"{col.url}/#/people?from={DAY}&to={DAY}&tz=UTC")
        browser.execute_script("window.dispatchEvent(new HashChangeEvent('hashchange'))")
        wait_text(browser, "error", "Collector unreachable")
        assert not browser.find_elements(By.ID, "people")
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    show(browser, col, "overview")
    wait_for(browser, lambda d: bool(table(d, "top-apps")))
    show(browser, col, f"day/{data['design']}/{DAY - timedelta(days=5)}")
    assert "No spans for ws-design" in page_text(browser)    # an empty state, not an error


def test_phone_width_is_one_column_and_usable(col, data, browser):
    from selenium.webdriver.common.by import By

    browser.set_window_size(390, 900)
    try:
        sign_in(browser, col, data["viewer"])
        for route in ("overview", "people", f"day/{data['design']}/{DAY}"):
            show(browser, col, route)
            wide = browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1")
            assert wide, (f"{route}: the page scrolls sideways at 390 px", browser.execute_script(
                "return Array.from(document.querySelectorAll('body *')).filter(n => "
                "n.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8)"
                ".map(n => n.tagName + '#' + n.id + '.' + n.className + ' ' + "
                "Math.round(n.getBoundingClientRect().width))"))
        show(browser, col, "overview")
        cards = browser.execute_script(
            "return Array.from(document.querySelectorAll('.grid > .card'))"
            ".map(c => Math.round(c.getBoundingClientRect().left))")
        assert len(set(cards)) == 1                      # one column: every card on one edge
        browser.find_element(By.LINK_TEXT, "People").click()
        wait_for(browser, lambda d: text_of(d, "view-title") == "People")
    finally:
        browser.set_window_size(1400, 1500)


def test_keyboard_reaches_the_navigation_and_sorting(col, data, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, col, data["viewer"])
    show(browser, col, "people")
    people_link = browser.find_element(By.CSS_SELECTOR, "#nav a[data-route='agents']")
    people_link.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: text_of(d, "view-title") == "Agents")
    sales = next(r for r in table(browser, "agents") if r[0] == "ws-sales")
    assert sales[3:5] == ["1 h 00 min", "30 min"]        # active, passive in the range
    sort = browser.find_element(By.CSS_SELECTOR, "#agents th button")
    sort.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: "▲" in text_of(d, "agents") or "▼" in text_of(d, "agents"))
    tabbable = browser.execute_script(
        "return Array.from(document.querySelectorAll('a[href], button, input, select, "
        "[tabindex]')).filter(n => n.tabIndex >= 0 && n.offsetParent !== null).length")
    assert tabbable > 10


def test_bad_token_is_refused_with_a_message(col, data, browser):
    from selenium.webdriver.common.by import By

    sign_in_page = col.url + "/"
    browser.get(sign_in_page)
    browser.execute_script("sessionStorage.clear()")
    browser.get(sign_in_page)
    wait_for(browser, lambda d: d.find_element(By.ID, "token").is_displayed())
    browser.find_element(By.ID, "token").send_keys("wl_nothere_nothing")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "login-error").text)
    assert "refused" in browser.find_element(By.ID, "login-error").text
    assert browser.execute_script("return sessionStorage.getItem('worklens.token')") is None


def test_page_loads_nothing_from_outside_and_has_a_favicon(col, browser):
    from selenium.webdriver.common.by import By

    browser.get(col.url + "/")
    for tag, attr in (("script", "src"), ("link", "href"), ("img", "src")):
        for node in browser.find_elements(By.TAG_NAME, tag):
            url = node.get_attribute(attr) or ""
            assert not url or url.startswith(col.url), url
    resp = col.get("/")
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    icon = browser.find_element(By.CSS_SELECTOR, "link[rel='icon']").get_attribute("href")
    assert col.get(icon.removeprefix(col.url)).headers["content-type"] == "image/svg+xml"
    assert col.get("/favicon.ico").status_code == 200


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


NOW_EVIL_TITLE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> =cmd|calc'


def test_live_is_scoped_like_everything_else(col, data):
    """A sales viewer's GET /api/v1/live lists sales agents only."""
    everyone = {a["hostname"] for a in col.get("/api/v1/live", data["viewer"]).json()["agents"]}
    sales = {a["hostname"] for a in col.get("/api/v1/live", data["sales_viewer"]).json()["agents"]}
    assert {"ws-design", "ws-eng", "ws-sales"} <= everyone
    assert "ws-sales" in sales and not sales & {"ws-design", "ws-eng"}


def test_the_now_panel_follows_an_agent_while_the_page_is_open(col, data, browser):
    """The "Now" panel polls GET /api/v1/live: a batch sent while the page is open
    shows up without a reload; a hostile title stays text."""
    import time as _time

    from selenium.webdriver.common.by import By

    live = col.enroll_agent(hostname="ws-now-panel")
    sign_in(browser, col, data["viewer"])

    def now_row(driver):
        rows = [r for r in table(driver, "now-table") if r and r[0].startswith("ws-now-panel")]
        return rows[0] if rows else None

    # agents that are offline or report nothing now are folded into one line
    wait_for(browser, lambda d: any("offline or without current activity" in " ".join(r)
                                    for r in table(d, "now-table")))
    assert now_row(browser) is None                        # never sent: folded away
    browser.find_element(By.CSS_SELECTOR, "#now-table .now-toggle").click()
    wait_for(browser, lambda d: now_row(d) and now_row(d)[1] == "offline")
    browser.find_element(By.CSS_SELECTOR, "#now-table .now-toggle").click()   # fold again
    start = int(_time.time() * 1000) - 4000
    col.send(live, "dana", [window(start, 4, "mpv", NOW_EVIL_TITLE)],
             [agent_pb2.ActivitySpan(start_ms=start, duration_ms=4000,
                                     state=agent_pb2.ACTIVITY_STATE_PASSIVE,
                                     reason=agent_pb2.PASSIVE_REASON_MEDIA)],
             hostname="ws-now-panel")
    wait_for(browser, lambda d: now_row(d) and now_row(d)[1] == "passive (media)", timeout=20)
    cells = now_row(browser)
    assert cells[0] == "ws-now-panel dana" and cells[2] == "mpv" and cells[3] == NOW_EVIL_TITLE
    assert cells[6] == "empty"
    assert browser.execute_script("return window.__xss") is None
    browser.save_screenshot("/tmp/worklens-dashboard-now.png")
