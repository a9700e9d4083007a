"""The user documentation in the repository stays true to the code and whole:
every config key the programs accept is documented with its environment
variable and default, every link leads to a file that ships with the
repository, and nothing points outside it (a clone, a package or a bundle has
no ``../shared``)."""

from __future__ import annotations

import dataclasses
import importlib
import re
import typing
from pathlib import Path

import pytest

# Each program's config module, holding AgentConfig / CollectorConfig.
CONFIG_MODULES = {"agent": "worklens.agent.config", "collector": "worklens.collector.config"}
DURATIONS = "worklens.common.durations"

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
CONFIGURATION = DOCS / "configuration.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def user_pages() -> list[Path]:
    """The pages a user reads: the README, the docs, the benchmarks' README."""
    return [REPO / "README.md", *sorted(DOCS.glob("*.md")), REPO / "benchmarks" / "README.md"]


def config_class(program: str) -> type:
    module = importlib.import_module(CONFIG_MODULES[program])
    return getattr(module, f"{program.capitalize()}Config")


def config_keys() -> list[tuple[str, str, str, dataclasses.Field]]:
    """(program, section, key, field) for every key either program accepts."""
    keys = []
    for program in CONFIG_MODULES:
        root = config_class(program)
        hints = typing.get_type_hints(root)
        for section in dataclasses.fields(root):
            for field in dataclasses.fields(hints[section.name]):
                keys.append((program, section.name, field.name, field))
    return keys


def documented_default(field: dataclasses.Field) -> str | None:
    """How the page writes a key's default, or None for an empty one
    (empty string, no path, empty list), which the page words freely."""
    if field.default is dataclasses.MISSING:
        return None
    value = field.default
    if field.metadata.get("duration"):
        return importlib.import_module(DURATIONS).format_duration(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if value in ("", None):
        return None
    return str(value)


def test_docs_link_nothing_outside_the_repository() -> None:
    """The check the issue gives: `grep -rn "shared/" README.md docs/` finds nothing."""
    found = [f"{page.relative_to(REPO)}:{number}: {line.strip()}"
             for page in [REPO / "README.md", *sorted(DOCS.rglob("*"))] if page.is_file()
             for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
             if "shared/" in line]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("program", "section", "key", "field"), config_keys(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_config_key_is_documented_with_its_variable_and_default(
        program: str, section: str, key: str, field: dataclasses.Field) -> None:
    """One table row per key, under the program's section heading: the key, its
    WORKLENS_<SECTION>_<KEY> variable and its default as the code has it."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    heading = f"`[{section}]`"
    part = _program_part(text, program)
    assert heading in part, f"docs/configuration.md: no {heading} heading in the {program} part"
    variable = f"WORKLENS_{section.upper()}_{key.upper()}"
    rows = [line for line in _section_part(part, heading).splitlines()
            if line.startswith(f"| `{key}` ")]
    assert rows, f"docs/configuration.md: no row for [{section}] {key} ({program})"
    assert f"`{variable}`" in rows[0], f"[{section}] {key}: the row does not name {variable}"
    default = documented_default(field)
    if default is not None:
        assert f"`{default}`" in rows[0], f"[{section}] {key}: default `{default}` not in the row"


def _program_part(text: str, program: str) -> str:
    """From the ``## Agent`` / ``## Collector`` heading to the next ``## ``."""
    match = re.search(rf"^## {program.capitalize()}\b.*?(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/configuration.md: no '## {program.capitalize()}' heading"
    return match.group(0)


def _section_part(part: str, heading: str) -> str:
    start = part.index(heading)
    following = part.find("\n### ", start)
    return part[start:following if following != -1 else len(part)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(encoding="utf-8"),
                                                   re.M)}


@pytest.mark.parametrize("page", user_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_in_the_repository(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or REPO not in (resolved, *resolved.parents):
            broken.append(f"{target}: no such file in the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)
