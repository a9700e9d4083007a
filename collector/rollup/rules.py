"""Productivity rules: ordered (app regex, title regex) -> category and
productivity class. The first rule that matches a window span wins; a span no
rule matches is "unclassified" — shown openly in summaries, never guessed.

Passive time (no input, but a video, a call...) in a window counts as that
window's category and class, unless the rule that matched says otherwise with
``passive`` (a class) and/or ``passive_category``: a video watched in the
browser is not the browser's "Research", a call in the chat app may be
"Meetings". Active and idle time always take the rule's own category and class.

Regexes are searched (not anchored) and case-insensitive, because operators
write ``slack`` and expect ``Slack`` to match; anchor with ``^...$`` when
needed. An empty regex matches anything, so a rule with only ``app`` ignores
titles and a rule with neither is a catch-all.

Why rules live in the store and changing them rewrites history: summaries read
rollups keyed by category, and a report over last month must use today's rules
(SPEC "Categories"). ``set_rules`` re-applies them in the same transaction.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from worklens.collector.store import Connection
from worklens.collector.store.base import POSTGRESQL, dialect
from worklens.common.cli import UserError

PRODUCTIVITY = ("productive", "neutral", "unproductive")
UNCLASSIFIED = "unclassified"
UNCLASSIFIED_CATEGORY = "(unclassified)"
EXCLUDED_APP = "(excluded)"
UNKNOWN_APP = "(unknown)"
_MEMO_MAX = 20_000


class RuleError(UserError):
    """A rule that cannot be used; the message names it (``rules[2].title: ...``)."""


FIELDS = ("app", "title", "category", "productivity", "passive", "passive_category")
Class = tuple[str, str]   # (category, productivity)


@dataclass(frozen=True)
class Rule:
    category: str
    productivity: str
    app: str = ""      # regex searched in the app name ("" = any)
    title: str = ""    # regex searched in the window title ("" = any)
    passive: str = ""            # the class of passive time in matched windows ("" = productivity)
    passive_category: str = ""   # the category of that time ("" = category)

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v or k in ("category", "productivity")}

    def classes(self) -> tuple[Class, Class]:
        """(category, class) of active/idle time and of passive time in matched windows."""
        own = (self.category, self.productivity)
        passive = (self.passive_category or self.category, self.passive or self.productivity)
        return own, (own if passive == own else passive)


def app_key(app: str, excluded: bool | int) -> str:
    """The app name summaries show: excluded apps count under "(excluded)"."""
    if excluded:
        return EXCLUDED_APP
    return app or UNKNOWN_APP


def validate(raw: Iterable[Any]) -> list[Rule]:
    """Turn parsed JSON/TOML into rules, or raise RuleError naming the bad rule."""
    if isinstance(raw, dict | str | bytes) or not isinstance(raw, Iterable):
        raise RuleError("rules: expected a list of rules")
    rules = []
    for i, item in enumerate(raw):
        where = f"rules[{i}]"
        if not isinstance(item, dict):
            raise RuleError(f"{where}: expected a table/object with category and productivity")
        unknown = set(item) - set(FIELDS)
        if unknown:
            raise RuleError(f"{where}: unknown field {sorted(unknown)[0]!r} (known: "
                            f"{', '.join(FIELDS)})")
        for field in FIELDS:
            if not isinstance(item.get(field, ""), str):
                raise RuleError(f"{where}.{field}: expected a string")
        category = item.get("category", "").strip()
        if not category:
            raise RuleError(f"{where}.category: expected a non-empty name")
        productivity = item.get("productivity", "")
        if productivity not in PRODUCTIVITY:
            raise RuleError(f"{where}.productivity: expected one of {', '.join(PRODUCTIVITY)}, "
                            f"got {productivity!r}")
        passive = item.get("passive", "")
        if passive and passive not in PRODUCTIVITY:
            raise RuleError(f"{where}.passive: expected one of {', '.join(PRODUCTIVITY)} (the "
                            f"class of passive time), got {passive!r}")
        for field in ("app", "title"):
            try:
                re.compile(item.get(field, ""))
            except re.error as exc:
                raise RuleError(f"{where}.{field}: bad regular expression "
                                f"{item.get(field)!r}: {exc}") from None
        rules.append(Rule(category, productivity, item.get("app", ""), item.get("title", ""),
                          passive, item.get("passive_category", "").strip()))
    return rules


_UNMATCHED: tuple[Class, Class] = ((UNCLASSIFIED_CATEGORY, UNCLASSIFIED),) * 2


class Classifier:
    """Compiled rules with a memo of (app, title) -> the (category, productivity)
    of active/idle time and of passive time: titles repeat a lot, so each distinct
    pair costs one regex pass."""

    def __init__(self, rules: list[Rule], version: int = 0) -> None:
        self.rules = rules
        self.version = version
        self._compiled = [(re.compile(r.app, re.IGNORECASE) if r.app else None,
                           re.compile(r.title, re.IGNORECASE) if r.title else None,
                           r.classes()) for r in rules]
        self._memo: dict[tuple[str, str], tuple[Class, Class]] = {}

    @property
    def uses_titles(self) -> bool:
        return any(r.title for r in self.rules)

    @property
    def splits_passive(self) -> bool:
        """Some rule classifies passive time apart from the rest of its windows' time."""
        return any(own is not passive for own, passive in (r.classes() for r in self.rules))

    def classify(self, app: str, title: str) -> Class:
        """The (category, productivity) of active and idle time in such a window."""
        return self.classes(app, title)[0]

    def classes(self, app: str, title: str) -> tuple[Class, Class]:
        """The (category, productivity) of active/idle time and of passive time in
        such a window (the same tuple when no rule sets them apart)."""
        key = (app, title)
        found = self._memo.get(key)
        if found is None:
            found = self._match(app, title)
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[key] = found
        return found

    def _match(self, app: str, title: str) -> tuple[Class, Class]:
        for app_re, title_re, result in self._compiled:
            if app_re is not None and not app_re.search(app):
                continue
            if title_re is not None and not title_re.search(title):
                continue
            return result
        return _UNMATCHED


# -- the store side -------------------------------------------------------------------------

_CACHE: dict[str, Classifier] = {}


def _db_key(conn: Connection) -> str:
    if dialect(conn) == POSTGRESQL:
        info = conn.raw.info
        return f"postgresql://{info.host}:{info.port}/{info.dbname}"
    return conn.execute("PRAGMA database_list").fetchone()[2]


def read_rules(conn: Connection) -> list[Rule]:
    rows = conn.execute("SELECT category, productivity, app, title, passive, passive_category "
                        "FROM rules ORDER BY position").fetchall()
    return [Rule(*row) for row in rows]


def rules_version(conn: Connection) -> int:
    return conn.execute("SELECT version FROM rules_version WHERE id = 1").fetchone()[0]


def classifier(conn: Connection, db_key: str | None = None) -> Classifier:
    """The current rules of the database behind ``conn``, compiled once per version."""
    key = db_key or _db_key(conn)
    version = rules_version(conn)
    cached = _CACHE.get(key)
    if cached is None or cached.version != version:
        cached = Classifier(read_rules(conn), version)
        _CACHE[key] = cached
    return cached


def get_rules(store: Any) -> list[Rule]:
    with store.reader() as conn:
        return read_rules(conn)


# -- files ----------------------------------------------------------------------------------

def parse_text(text: str, name: str = "rules") -> list[Rule]:
    """JSON (a list, or an object with "rules") or TOML (``[[rule]]`` tables)."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")) and not stripped.startswith("[["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RuleError(f"{name}: not valid JSON: {exc}") from None
        if isinstance(data, dict):
            data = data.get("rules", data.get("rule"))
            if data is None:
                raise RuleError(f"{name}: expected a list of rules or {{\"rules\": [...]}}")
        return validate(data)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{name}: not valid TOML or JSON: {exc}") from None
    unknown = set(data) - {"rule", "rules"}
    if unknown:
        raise RuleError(f"{name}: unknown key {sorted(unknown)[0]!r}: expected [[rule]] tables")
    return validate(data.get("rule", data.get("rules", [])))


def _toml_string(value: str) -> str:
    # Literal strings keep regex backslashes readable; fall back to a basic string.
    if "'" not in value and "\n" not in value and "\r" not in value and value.isprintable():
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False)


def to_toml(rules: list[Rule]) -> str:
    out = ["# Worklens productivity rules: the first match wins; regexes are searched,",
           "# case-insensitive. productivity = productive | neutral | unproductive.",
           "# passive / passive_category (optional): the class / category of passive time",
           "# in the windows a rule matches (default: its productivity / category).", ""]
    for rule in rules:
        out.append("[[rule]]")
        for key, value in rule.to_dict().items():
            out.append(f"{key} = {_toml_string(value)}")
        out.append("")
    return "\n".join(out)


def to_json(rules: list[Rule]) -> str:
    return json.dumps({"rules": [r.to_dict() for r in rules]}, ensure_ascii=False, indent=2)
