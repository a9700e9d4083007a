"""Productivity rules: validation naming the bad rule, file round trips, history
re-categorised on change (both the app-only relabel and the title recompute)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from datetime import date

import dataset as ds
import pytest
from worklens.collector.reports.summary import summarize
from worklens.collector.rollup import buckets as rollup
from worklens.collector.rollup import set_rules
from worklens.collector.rollup.rules import (
    Classifier,
    Rule,
    RuleError,
    get_rules,
    parse_text,
    to_json,
    to_toml,
    validate,
)
from worklens.v1 import agent_pb2

pytestmark = pytest.mark.both_engines
DAYS = (date(2026, 3, 28), date(2026, 3, 29))


@pytest.fixture
def store(store_url):
    store = ds.open_store(store_url)
    yield store
    store.close()


def categories(store, agent=ds.ALICE):
    s = summarize(store, *DAYS, "category", ds.ZONE, agent=agent)
    return {r.key: r.active_seconds for r in s.rows}


def test_first_matching_rule_wins_case_insensitively():
    clf = Classifier(validate(ds.RULES))
    assert clf.classify("firefox", "YouTube - cats") == ("Video", "unproductive")
    assert clf.classify("Firefox", "docs") == ("Browsing", "neutral")
    assert clf.classify("firefox-esr", "docs") == ("(unclassified)", "unclassified")
    assert clf.classify("code", "youtube tutorial") == ("Video", "unproductive")


@pytest.mark.parametrize(("raw", "message"), [
    ([{"app": "x", "category": "A", "productivity": "productive"},
      {"title": "([unclosed", "category": "B", "productivity": "neutral"}],
     r"rules\[1\]\.title: bad regular expression '\(\[unclosed'"),
    ([{"app": "*oops", "category": "A", "productivity": "productive"}],
     r"rules\[0\]\.app: bad regular expression"),
    ([{"category": "A", "productivity": "very"}], r"rules\[0\]\.productivity: expected one of"),
    ([{"category": " ", "productivity": "neutral"}], r"rules\[0\]\.category: expected"),
    ([{"category": "A", "productivity": "neutral", "colour": "red"}],
     r"rules\[0\]: unknown field 'colour'"),
    ([{"category": "A", "productivity": "neutral", "app": 3}], r"rules\[0\]\.app: expected a str"),
    ("not a list", "expected a list"),
])
def test_bad_rules_name_the_rule_and_field(raw, message):
    with pytest.raises(RuleError, match=message):
        validate(raw)


def test_toml_and_json_round_trip():
    rules = validate([*ds.RULES, {"app": r"^(vim|nvim)$", "title": r"\.py$ it's",
                                  "category": 'Dev "core"', "productivity": "productive"}])
    text = to_toml(rules)
    assert parse_text(text) == rules
    assert tomllib.loads(text)["rule"][3]["app"] == r"^(vim|nvim)$"
    assert parse_text(to_json(rules)) == rules
    assert parse_text(json.dumps([r.to_dict() for r in rules])) == rules
    assert parse_text("") == []
    with pytest.raises(RuleError, match="not valid TOML"):
        parse_text("[[rule]\ncategory=")
    with pytest.raises(RuleError, match="not valid JSON"):
        parse_text("{ nope")


def test_changing_title_rules_recategorises_history(store):
    ds.load(store)
    assert categories(store) == ds.ALICE_CATEGORIES
    # YouTube is now research; slack becomes Chat
    set_rules(store, [
        {"app": "firefox", "category": "Research", "productivity": "productive"},
        {"app": "slack", "title": "general", "category": "Chat", "productivity": "neutral"},
        {"app": "code", "category": "Development", "productivity": "productive"},
    ])
    assert categories(store) == {"Development": 55 * ds.MIN, "Research": 30 * ds.MIN,
                                 "Chat": 30 * ds.MIN, "(unclassified)": 10 * ds.MIN}
    day = summarize(store, *DAYS, "day", ds.ZONE, user="alice").rows[1]
    # 03-29: code 15 + 30 and firefox 30 productive; slack 30 neutral
    assert day.productive_seconds == 75 * ds.MIN and day.neutral_seconds == 30 * ds.MIN
    # what a rebuild computes with the new rules is what re-applying gave
    with store.reader() as conn:
        before = sorted(conn.execute("SELECT * FROM rollup_window").fetchall())
    rollup.rebuild(store)
    with store.reader() as conn:
        assert sorted(conn.execute("SELECT * FROM rollup_window").fetchall()) == before


def test_app_only_rules_relabel_in_place(store):
    ds.load(store, rules=False)
    assert categories(store) == {"(unclassified)": 125 * ds.MIN}
    set_rules(store, [{"app": "code|slack", "category": "Work", "productivity": "productive"}])
    assert categories(store) == {"Work": 85 * ds.MIN, "(unclassified)": 40 * ds.MIN}
    set_rules(store, [{"app": "code", "category": "Work", "productivity": "productive"},
                      {"app": "fire", "category": "Web", "productivity": "neutral"}])
    assert categories(store) == {"Work": 55 * ds.MIN, "Web": 30 * ds.MIN,
                                 "(unclassified)": 40 * ds.MIN}
    fleet = summarize(store, *DAYS, "category", ds.ZONE)
    assert {r.key: r.active_seconds for r in fleet.rows} == categories(store)
    assert get_rules(store)[1] == Rule("Web", "neutral", app="fire")
    with store.reader() as conn:
        relabelled = sorted(conn.execute("SELECT * FROM rollup_window_all").fetchall())
    rollup.rebuild(store)
    with store.reader() as conn:
        assert sorted(conn.execute("SELECT * FROM rollup_window_all").fetchall()) == relabelled


def test_new_spans_use_the_current_rules(store):
    set_rules(store, [{"app": "slack", "category": "Chat", "productivity": "neutral"}])
    ds.load(store, rules=False)
    assert categories(store)["Chat"] == 30 * ds.MIN


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worklens.collector", *args],
                          capture_output=True, text=True, timeout=120)


def test_rules_show_and_load_commands(tmp_path, store_url):
    db = store_url
    good = tmp_path / "rules.toml"
    good.write_text(to_toml(validate(ds.RULES)))
    done = _cli("rules", "load", str(good), "--db", db)
    assert done.returncode == 0, done.stderr
    assert "loaded 3 rule(s)" in done.stdout
    shown = _cli("rules", "show", "--db", db)
    assert shown.returncode == 0 and parse_text(shown.stdout) == validate(ds.RULES)

    as_json = tmp_path / "rules.json"
    as_json.write_text(json.dumps({"rules": ds.RULES[:1]}))
    assert _cli("rules", "load", str(as_json), "--db", db).returncode == 0
    assert len(parse_text(_cli("rules", "show", "--db", db).stdout)) == 1

    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\ncategory = "A"\nproductivity = "neutral"\n\n'
                   '[[rule]]\ntitle = "(x"\ncategory = "B"\nproductivity = "neutral"\n')
    for args, message in (((str(bad),), "rules[1].title: bad regular expression"),
                          ((str(tmp_path / "missing.toml"),), "cannot read"),
                          ((str(tmp_path),), "cannot read")):
        failed = _cli("rules", "load", *args, "--db", db)
        assert failed.returncode == 1, failed
        assert message in failed.stderr and failed.stderr.count("\n") == 1
        assert "Traceback" not in failed.stderr
    assert len(parse_text(_cli("rules", "show", "--db", db).stdout)) == 1   # nothing lost


def test_rules_changed_while_another_collector_ingests(store, store_url):
    """A rules change commits while another store (another collector, on PostgreSQL
    another process's transactions) keeps ingesting: every rollup row ends up labelled
    by the rules in force when it was stored or re-applied, as a rebuild computes."""
    import threading

    other = ds.open_store(store_url)
    try:
        set_rules(store, ds.RULES)
        key = ds.add_agent(store, ds.ALICE, "alice")
        base = ds.ms("2026-03-29T08:00")
        batches = []
        for seq in range(1, 121):
            start = base + seq * 60_000
            b = agent_pb2.Batch(agent_id=ds.ALICE, sequence=seq,
                                host=agent_pb2.HostInfo(user="alice"))
            b.windows.append(agent_pb2.WindowSpan(start_ms=start, duration_ms=60_000,
                                                  app=("code", "slack", "firefox")[seq % 3],
                                                  title=("main.py", "general", "YouTube")[seq % 3]))
            b.activity.append(agent_pb2.ActivitySpan(start_ms=start, duration_ms=60_000,
                                                     state=agent_pb2.ACTIVITY_STATE_ACTIVE))
            batches.append(b)
        feeder = threading.Thread(target=lambda: [ds.ingest(other, key, [b]) for b in batches])
        feeder.start()
        changes = [[{"app": "slack", "category": "Chat", "productivity": "neutral"}],
                   [{"title": "main", "category": "Dev", "productivity": "productive"}],
                   ds.RULES]
        while feeder.is_alive():
            for rules in changes:
                set_rules(store, rules)
        feeder.join()
        set_rules(store, changes[0])
        with store.reader() as conn:
            kept = sorted(conn.execute("SELECT * FROM rollup_window").fetchall())
        rollup.rebuild(store)
        with store.reader() as conn:
            assert sorted(conn.execute("SELECT * FROM rollup_window").fetchall()) == kept
        assert categories(store, ds.ALICE) == {"Chat": 40 * ds.MIN, "(unclassified)": 80 * ds.MIN}
    finally:
        other.close()
