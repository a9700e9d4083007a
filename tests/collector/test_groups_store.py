"""Migration 0006 (groups) on a store made before it: it opens unchanged, its
tokens unscoped and its agents in no group, until an admin says otherwise."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from worklens.collector.access import groups, tokens
from worklens.collector.store import migrate, open_store


def test_a_store_from_before_groups_opens_with_everyone_unscoped(tmp_path):
    old = tmp_path / "before-groups"
    old.mkdir()
    for m in migrate.available():
        if m.version < 6:
            shutil.copy(m.path, old / m.path.name)
    db = tmp_path / "worklens.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate.apply(conn, old)
    conn.execute("INSERT INTO agents (agent_id, credential_hash, enrolled_ms) "
                 "VALUES ('ag-old', 'x', 1)")
    conn.close()
    store = open_store(f"sqlite:///{db}")
    try:
        assert_unscoped_until_grouped(store, 1)
    finally:
        store.close()


def assert_unscoped_until_grouped(store, key: int) -> None:
    """Agent ``ag-old`` (``key``) and a new viewer token start without groups, and
    see everything; then the agent joins ``ops``."""
    _info, secret = tokens.create_token(store, "viewer", "old-viewer")
    assert tokens.verify_token(store, secret).groups == ()
    with store.reader() as reader:
        seen = groups.visible(reader, groups.scope_for("viewer", ()))
        assert seen.keys is None and seen.groups_of == {}
        assert groups.list_groups(reader) == []
    assert groups.set_agent_groups(store, "ag-old", ["ops", "ops"]) == ("ops",)
    with store.reader() as reader:
        assert groups.memberships(reader) == {key: ["ops"]}
        assert groups.visible(reader, groups.Scope(("ops",))).keys == {key}
        assert groups.visible(reader, groups.Scope(("op",))).keys == frozenset()


@pytest.mark.both_engines
def test_groups_and_scoped_tokens(store_url):
    """Groups on a new store of either engine: memberships, scopes covering subgroups,
    token groups, counts per group with revoked agents apart."""
    store = open_store(store_url)
    try:
        keys = {name: store.write(lambda c, n=name: c.execute(
            "INSERT INTO agents (agent_id, credential_hash, enrolled_ms, revoked_ms) "
            "VALUES (?, 'x', 1, ?) RETURNING id",
            (n, 5 if n == "ag-gone" else None)).fetchone()[0])
            for name in ("ag-old", "ag-back", "ag-gone")}
        assert_unscoped_until_grouped(store, keys["ag-old"])
        groups.set_agent_groups(store, "ag-back", ["eng/backend", "Sales"])
        groups.set_agent_groups(store, "ag-gone", ["eng"])
        with pytest.raises(groups.UnknownAgentId):
            groups.set_agent_groups(store, "ag-nobody", ["ops"])
        info, _secret = tokens.create_token(store, "viewer", "eng-lead", groups=["eng", "Sales"])
        assert [t.groups for t in tokens.list_tokens(store) if t.id == info.id] == [
            ("Sales", "eng")]
        with store.reader() as reader:
            assert groups.token_groups(reader, info.id) == ("Sales", "eng")
            assert groups.list_groups(reader) == [
                {"group": "Sales", "agents": 1, "revoked_agents": 0},
                {"group": "eng", "agents": 0, "revoked_agents": 1},
                {"group": "eng/backend", "agents": 1, "revoked_agents": 0},
                {"group": "ops", "agents": 1, "revoked_agents": 0}]
            eng = groups.visible(reader, groups.Scope(("eng",)))
            assert eng.keys == {keys["ag-back"], keys["ag-gone"]}
            assert eng.groups_of[keys["ag-back"]] == ["eng/backend"]   # Sales not shown
            assert groups.group_exists(reader, groups.Scope(("eng",)), "eng/backend")
            assert not groups.group_exists(reader, groups.Scope(("ops",)), "eng")
    finally:
        store.close()
