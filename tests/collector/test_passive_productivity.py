"""Passive time in productivity (issue 16): it counts as its window's category
and class unless a rule classifies it apart (``passive``, ``passive_category``),
in every summary grouping, on the fast day-table paths and the 15-minute ones
alike, in the daily and apps CSVs; a rebuild and a rules change give the rollups
ingest kept; and migration 0011 moves an existing store over. On SQLite and on a
real PostgreSQL. Every number is worked out by hand from the spans below.

pat (one agent), 2026-03-10 UTC::

    W1 code    "main.py"          09:00-10:00  ACTIVE 09:00-09:30, PASSIVE 09:30-09:45,
                                               IDLE 09:45-10:00
    W2 firefox "YouTube - talk"   10:00-11:00  PASSIVE 10:00-10:50, ACTIVE 10:50-11:00
    W3 zoom    "Standup"          11:00-11:30  PASSIVE, sent as two parts cut at 11:20

Rules: code -> Development/productive; YouTube titles -> Video/unproductive;
zoom -> Chat/unproductive, its passive time Meetings/productive.
"""

from __future__ import annotations

import csv
import io
import shutil
import sqlite3
import subprocess
import sys
from datetime import date

import dataset as ds
import pytest
from test_rollup import snapshot
from worklens.collector.reports import csvexport
from worklens.collector.reports.summary import summarize
from worklens.collector.rollup import buckets as rollup
from worklens.collector.rollup import rules as rules_mod
from worklens.collector.store import migrate
from worklens.v1 import agent_pb2

pytestmark = pytest.mark.both_engines
PAT = "ag-pat"
DAY = date(2026, 3, 10)
ACTIVE, IDLE, PASSIVE = (agent_pb2.ACTIVITY_STATE_ACTIVE, agent_pb2.ACTIVITY_STATE_IDLE,
                         agent_pb2.ACTIVITY_STATE_PASSIVE)
RULES = [
    {"app": "^code$", "category": "Development", "productivity": "productive"},
    {"title": "YouTube", "category": "Video", "productivity": "unproductive"},
    {"app": "^zoom$", "category": "Chat", "productivity": "unproductive",
     "passive": "productive", "passive_category": "Meetings"},
]
MIN = 60.0
DAY_TABLES = ("rollup_agent_day", "rollup_app_day")


def t(hhmm: str) -> str:
    return f"2026-03-10T{hhmm}"


def passive(start: str, end: str, reason: int = agent_pb2.PASSIVE_REASON_MEDIA, **fields):
    span = ds.activity(t(start), t(end), PASSIVE)
    span.reason = reason
    for name, value in fields.items():
        setattr(span, name, value)
    return span


def batches() -> list[agent_pb2.Batch]:
    """Windows first, their activity later (late pairs), then a window with its parts."""
    zoom = ds.window(t("11:00"), t("11:20"), "zoom", "Standup")
    zoom_rest = ds.window(t("11:20"), t("11:30"), "zoom", "Standup")
    zoom_rest.continued = True
    call = agent_pb2.PASSIVE_REASON_CALL
    return [
        ds._batch(PAT, "pat", 1, windows=[ds.window(t("09:00"), t("10:00"), "code", "main.py"),
                                          ds.window(t("10:00"), t("11:00"), "firefox",
                                                    "YouTube - talk")]),
        ds._batch(PAT, "pat", 2, activity=[
            ds.activity(t("09:00"), t("09:30"), ACTIVE, keys=50), passive("09:30", "09:45"),
            ds.activity(t("09:45"), t("10:00"), IDLE), passive("10:00", "10:50"),
            ds.activity(t("10:50"), t("11:00"), ACTIVE, keys=5)]),
        ds._batch(PAT, "pat", 3, windows=[zoom], activity=[passive("11:00", "11:20", call)]),
        ds._batch(PAT, "pat", 4, windows=[zoom_rest],
                  activity=[passive("11:20", "11:30", call, continued=True)]),
    ]


def load(store, rules=RULES) -> None:
    rollup.set_rules(store, rules)
    ds.ingest(store, ds.add_agent(store, PAT, "pat"), batches())


@pytest.fixture
def store(store_url):
    store = ds.open_store(store_url)
    load(store)
    yield store
    store.close()


def rollups(store) -> dict[str, list[tuple]]:
    out = snapshot(store)
    out.pop("rollup_dropped")
    with store.reader() as conn:
        for table in DAY_TABLES:
            out[table] = sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
    return out


def rows(summary) -> dict[str, tuple]:
    return {r.key: (r.active_seconds / MIN, r.passive_seconds / MIN, r.idle_seconds / MIN,
                    r.productive_seconds / MIN, r.unproductive_seconds / MIN, r.spans)
            for r in summary.rows}


# -- the rules grammar -----------------------------------------------------------------------

def test_rules_take_a_passive_class_and_category_and_say_what_is_wrong():
    checked = rules_mod.validate(RULES)
    assert checked[2].classes() == (("Chat", "unproductive"), ("Meetings", "productive"))
    own, same = checked[0].classes()
    assert same is own                      # no passive fields: the window's own class
    only_class = rules_mod.validate([{**RULES[0], "passive": "neutral"}])[0]
    assert only_class.classes()[1] == ("Development", "neutral")
    assert rules_mod.Classifier(checked).splits_passive
    assert not rules_mod.Classifier(checked[:2]).splits_passive
    # the same class written out is no split
    assert not rules_mod.Classifier(rules_mod.validate(
        [{**RULES[0], "passive": "productive", "passive_category": "Development"}])).splits_passive
    for bad, says in (({**RULES[0], "passive": "great"}, "rules[0].passive: expected one of "
                       "productive, neutral, unproductive (the class of passive time), got "
                       "'great'"),
                      ({**RULES[0], "passive_category": 3}, "rules[0].passive_category: "
                       "expected a string"),
                      ({**RULES[0], "pasive": "neutral"}, "unknown field 'pasive'")):
        with pytest.raises(rules_mod.RuleError) as refused:
            rules_mod.validate([bad])
        assert says in str(refused.value)


def test_the_rules_file_carries_the_passive_fields_both_ways():
    toml = rules_mod.to_toml(rules_mod.validate(RULES))
    assert "passive = 'productive'" in toml and "passive_category = 'Meetings'" in toml
    assert [r.to_dict() for r in rules_mod.parse_text(toml)] == [
        {"category": r["category"], "productivity": r["productivity"],
         **{k: v for k, v in r.items() if k not in ("category", "productivity")}}
        for r in RULES]
    assert rules_mod.parse_text(rules_mod.to_json(rules_mod.validate(RULES))) == \
        rules_mod.validate(RULES)


def test_rules_load_and_show_a_file_with_passive_fields(tmp_path):
    db = f"sqlite:///{tmp_path}/worklens.db"
    written = tmp_path / "rules.toml"
    written.write_text('[[rule]]\napp = "^(slack|teams)$"\ncategory = "Chat"\n'
                       'productivity = "neutral"\npassive = "productive"\n'
                       'passive_category = "Meetings"\n')
    done = _cli("rules", "load", str(written), "--db", db)
    assert done.returncode == 0, done.stderr
    shown = _cli("rules", "show", "--db", db).stdout
    assert rules_mod.parse_text(shown) == [rules_mod.Rule(
        "Chat", "neutral", "^(slack|teams)$", "", "productive", "Meetings")]
    written.write_text('[[rule]]\ncategory = "Chat"\nproductivity = "neutral"\n'
                       'passive = "yes"\n')
    failed = _cli("rules", "load", str(written), "--db", db)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.count("\n") == 1 and "rules[0].passive: expected one of" in failed.stderr


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worklens.collector", *args],
                          capture_output=True, text=True, timeout=120)


# -- summaries -------------------------------------------------------------------------------

def test_passive_time_counts_in_its_class_in_every_grouping(store):
    by_app = rows(summarize(store, DAY, DAY, "app", "UTC"))
    # (active, passive, idle, productive, unproductive, spans), minutes
    assert by_app == {"code": (30, 15, 15, 45, 0, 1), "firefox": (10, 50, 0, 0, 60, 1),
                      "zoom": (0, 30, 0, 30, 0, 1)}
    by_category = rows(summarize(store, DAY, DAY, "category", "UTC"))
    assert by_category == {"Development": (30, 15, 15, 45, 0, 1),
                           "Video": (10, 50, 0, 0, 60, 1),
                           "Meetings": (0, 30, 0, 30, 0, 0),
                           "Chat": (0, 0, 0, 0, 0, 1)}   # zoom's span stays with its category
    total = summarize(store, DAY, DAY, "user", "UTC").total
    assert (total.productive_seconds, total.unproductive_seconds) == (75 * MIN, 60 * MIN)
    assert (total.productive_share, total.unproductive_share) == (0.5556, 0.4444)
    expected = {"pat": (40, 95, 15, 75, 60, 3)}
    for tz in ("UTC", "Asia/Kathmandu"):    # whole UTC days (day table) and their edges
        assert rows(summarize(store, DAY, DAY, "user", tz)) == expected
        assert rows(summarize(store, DAY, DAY, "agent", tz)) == {PAT: expected["pat"]}
        assert rows(summarize(store, DAY, DAY, "group", tz, groups_of={})) == {
            "(no group)": expected["pat"]}
        assert rows(summarize(store, DAY, DAY, "day", tz, user="pat")) == {
            DAY.isoformat(): expected["pat"]}
    with store.reader() as conn:
        keys = frozenset(k for (k,) in conn.execute("SELECT id FROM agents"))
    scoped = rows(summarize(store, DAY, DAY, "category", "UTC", agents=keys))   # app-day table
    assert scoped == by_category
    hours = rows(summarize(store, DAY, DAY, "hour", "UTC"))
    assert hours[f"{DAY}T10:00:00+00:00"] == (10, 50, 0, 0, 60, 1)


def test_daily_and_apps_csv_count_passive_time_in_the_classes(store):
    def export(kind):
        text = b"".join(csvexport.export(store, kind, DAY, DAY, "UTC")).decode()
        return list(csv.DictReader(io.StringIO(text)))

    daily = export("daily")
    assert [(r["active_seconds"], r["passive_seconds"], r["productive_seconds"],
             r["unproductive_seconds"]) for r in daily] == [("2400.0", "5700.0", "4500.0",
                                                              "3600.0")]
    apps = sorted((r["app"], r["category"], r["productivity"], r["active_seconds"],
                   r["passive_seconds"], r["spans"]) for r in export("apps"))
    assert apps == [("code", "Development", "productive", "1800.0", "900.0", "1"),
                    ("firefox", "Video", "unproductive", "600.0", "3000.0", "1"),
                    ("zoom", "Chat", "unproductive", "0.0", "0.0", "1"),
                    ("zoom", "Meetings", "productive", "0.0", "1800.0", "0")]


# -- rollups: rebuild, rules changes ---------------------------------------------------------

def test_a_rebuild_gives_the_rollups_ingest_kept(store):
    ingested = rollups(store)
    with store.reader() as conn:
        assert conn.execute("SELECT sum(passive_ms) FROM rollup_window WHERE category = "
                            "'Meetings'").fetchone()[0] == 30 * 60_000
    rollup.rebuild(store)
    assert rollups(store) == ingested


ZOOM_PLAIN = [{"app": "^zoom$", "category": "Chat", "productivity": "unproductive"}]
NO_TITLES = [RULES[0], RULES[2]]


@pytest.mark.parametrize("before, after", [
    ([], RULES),                    # all unclassified before
    (ZOOM_PLAIN, RULES),
    (RULES, RULES),
    (ZOOM_PLAIN, NO_TITLES),        # no title rules either side: a split still moves time
    (NO_TITLES, ZOOM_PLAIN),
], ids=["none", "app-rules", "same", "split-app-rules", "unsplit-app-rules"])
def test_rules_changes_give_what_ingest_under_the_new_rules_keeps(store_urls, before, after):
    stores = []
    try:
        changed = _loaded(store_urls(), before, stores)
        rollup.set_rules(changed, after)
        assert rollups(changed) == rollups(_loaded(store_urls(), after, stores))
        rollup.set_rules(changed, before)                       # and back
        assert rollups(changed) == rollups(_loaded(store_urls(), before, stores))
    finally:
        for opened in stores:
            opened.close()


def _loaded(url, rules, stores):
    store = ds.open_store(url)
    stores.append(store)
    load(store, rules)
    return store


# -- migration 0011 --------------------------------------------------------------------------

def _until_0010(directory, into):
    """A copy of the migrations up to 0010: a store as the version before made it."""
    into.mkdir()
    for found in migrate.available(directory):
        if found.version <= 10:
            shutil.copy(found.path, into)
    return into


def test_migration_0011_counts_passive_time_of_existing_day_rows(engine, tmp_path, request):
    if engine == "sqlite":
        conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
        migrate.apply(conn, _until_0010(migrate.MIGRATIONS_DIR, tmp_path / "old"))
        upgrade = lambda: migrate.apply(conn)                      # noqa: E731
        run = conn.execute
    else:
        import psycopg
        from worklens.collector.store.pgsql import PgConnection

        url = request.getfixturevalue("postgres_url")
        conn = PgConnection(psycopg.connect(url, autocommit=True))
        migrate.apply_postgresql(conn, _until_0010(migrate.POSTGRESQL_DIR, tmp_path / "old"))
        upgrade = lambda: migrate.apply_postgresql(conn)           # noqa: E731
        run = conn.execute
    try:
        run("INSERT INTO agents (agent_id, credential_hash, enrolled_ms) VALUES ('ag-old', 'x', 0)")
        agent = run("SELECT id FROM agents").fetchone()[0]
        insert = ("INSERT INTO rollup_window (agent, bucket, username, app, category, "
                  "productivity, active_ms, idle_ms, spans, passive_ms) VALUES (?, ?, 'pat', "
                  "'vlc', 'Video', 'unproductive', ?, 0, 1, ?)")
        run(insert, (agent, 0, 60_000, 40_000))
        day = "SELECT unproductive_ms, passive_ms FROM rollup_agent_day"
        assert tuple(run(day).fetchone()) == (60_000, 40_000)     # 0010: active time only
        assert upgrade() == [11]
        assert tuple(run(day).fetchone()) == (100_000, 40_000)    # recomputed
        run(insert, (agent, 900_000, 1_000, 2_000))               # the new triggers
        assert tuple(run(day).fetchone()) == (103_000, 42_000)
        run("INSERT INTO rules (position, category, productivity) VALUES (0, 'V', 'neutral')")
        assert tuple(run("SELECT passive, passive_category FROM rules").fetchone()) == ("", "")
    finally:
        (conn if engine == "sqlite" else conn.raw).close()


# -- the rules preview -----------------------------------------------------------------------

# No title rules: from the rollups (whatever the saved rules look at). firefox's own time
# becomes Browsing (10 min of active time), its passive time stays Video; zoom's passive
# time leaves Meetings/productive for Chat/unproductive (30 min).
APP_CANDIDATES = [
    RULES[0],
    {"app": "^zoom$", "category": "Chat", "productivity": "unproductive"},
    {"app": "firefox", "category": "Browsing", "productivity": "neutral",
     "passive": "unproductive", "passive_category": "Video"},
]
# Title rules: from the raw spans. The talk's active time becomes Talks/productive, its
# passive time Talks/neutral (60 min change); zoom stays; code is left unclassified.
TITLE_CANDIDATES = [
    {"title": "talk", "category": "Talks", "productivity": "productive", "passive": "neutral"},
    RULES[2],
]


def _minutes(seconds: dict[str, float]) -> dict[str, float]:
    return {k.removesuffix("_seconds"): v / MIN for k, v in seconds.items()}


def _preview(store, rules, tz="UTC"):
    from worklens.collector.reports import rules_preview
    from worklens.collector.reports.summary import zone

    return rules_preview.preview(store, rules, DAY, DAY, zone(tz))


@pytest.mark.parametrize("candidates, source, expected", [
    (APP_CANDIDATES, "rollups", {
        "window": (150, 40, 0, 95),   # total, changed, unclassified, passive (minutes)
        # per rule: (matched, changed, passive, passive changed)
        "rules": [(60, 0, 15, 0), (30, 30, 30, 30), (60, 10, 50, 0)],
        "predicted": {"productive": 45, "neutral": 10, "unproductive": 80, "unclassified": 0}}),
    (TITLE_CANDIDATES, "raw spans (titles)", {
        "window": (150, 120, 60, 95),
        "rules": [(60, 60, 50, 50), (30, 0, 30, 0)],
        "predicted": {"productive": 40, "neutral": 50, "unproductive": 0,
                      "unclassified": 45}}),
], ids=["rollups", "raw-spans"])
def test_the_preview_counts_passive_time_by_the_candidate_rules(store, candidates, source,
                                                                expected):
    got = _preview(store, candidates)
    assert got["source"] == source
    assert tuple(got[k] / MIN for k in ("total_seconds", "changed_seconds",
                                        "unclassified_seconds", "passive_seconds")
                 ) == expected["window"]
    assert [(r["seconds"] / MIN, r["changed_seconds"] / MIN, r["passive_seconds"] / MIN,
             r["passive_changed_seconds"] / MIN) for r in got["rules"]] == expected["rules"]
    assert _minutes(got["current"]) == {"productive": 75, "neutral": 0, "unproductive": 60,
                                        "unclassified": 0}
    assert _minutes(got["predicted"]) == expected["predicted"]
    assert rules_mod.get_rules(store) == rules_mod.validate(RULES)    # nothing saved


@pytest.mark.parametrize("candidates", [APP_CANDIDATES, TITLE_CANDIDATES],
                         ids=["rollups", "raw-spans"])
@pytest.mark.parametrize("tz", ["UTC", "Pacific/Chatham"])   # +13:45: the day ends at 10:15
def test_the_preview_predicts_the_summary_after_saving(store, candidates, tz):
    def classes(summary_total):
        return {f"{c}_seconds": getattr(summary_total, f"{c}_seconds")
                for c in ("productive", "neutral", "unproductive", "unclassified")}

    before = _preview(store, candidates, tz)
    assert before["current"] == classes(summarize(store, DAY, DAY, "user", tz).total)
    rollup.set_rules(store, candidates)
    after = summarize(store, DAY, DAY, "user", tz).total
    assert before["predicted"] == classes(after)
    assert before["total_seconds"] == after.active_seconds + after.idle_seconds + \
        after.passive_seconds
    assert _preview(store, candidates, tz)["changed_seconds"] == 0   # saved: nothing moves
