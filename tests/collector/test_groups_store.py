"""Migration 0006 (groups) on a store made before it: it opens unchanged, its
tokens unscoped and its agents in no group, until an admin says otherwise."""

from __future__ import annotations

import shutil
import sqlite3

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
        _info, secret = tokens.create_token(store, "viewer", "old-viewer")
        assert tokens.verify_token(store, secret).groups == ()
        with store.reader() as reader:
            seen = groups.visible(reader, groups.scope_for("viewer", ()))
            assert seen.keys is None and seen.groups_of == {}
            assert groups.list_groups(reader) == []
        assert groups.set_agent_groups(store, "ag-old", ["ops", "ops"]) == ("ops",)
        with store.reader() as reader:
            assert groups.memberships(reader) == {1: ["ops"]}
            assert groups.visible(reader, groups.Scope(("ops",))).keys == {1}
            assert groups.visible(reader, groups.Scope(("op",))).keys == frozenset()
    finally:
        store.close()
