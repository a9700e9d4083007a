"""Typed configuration: dataclasses loaded from TOML, overridden by
``WORKLENS_<SECTION>_<KEY>`` environment variables and then by flags, and
validated once at start so that a bad value stops the program with one line
naming the key and what was expected.

A program describes its configuration as a dataclass whose fields are section
dataclasses; each field's type says how to read it. Durations are floats with
``duration()`` metadata (written ``500ms``, ``10s``...). Extra checks go in the
``check`` metadata as ``(predicate, "what was expected")``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from worklens.common.durations import EXPECTED as DURATION_EXPECTED
from worklens.common.durations import MAX_SECONDS, parse_duration

T = TypeVar("T")
ENV_PREFIX = "WORKLENS_"

# WORKLENS_* variables that are not ``WORKLENS_<SECTION>_<KEY>`` settings, and who
# reads them; ``load`` never mistakes them for a misspelt key.
OTHER_VARIABLES = frozenset({
    "WORKLENS_CONFIG", "WORKLENS_DATA_DIR",        # both programs (below)
    "WORKLENS_TOKEN", "WORKLENS_URL",              # worklens-collector summary / export
    "WORKLENS_COLLECTOR", "WORKLENS_ENROLL_SECRET",  # the agent packages' install scripts
    "WORKLENS_CA_CERT", "WORKLENS_INSECURE",
    "WORKLENS_RESTART_DELAY",                      # the agent's desktop-session wrapper
    "WORKLENS_PKG_VERSION", "WORKLENS_PKG_ARCH",   # packaging/build.py
    "WORKLENS_DEV_DIR",                            # make run
})
# WORKLENS_<KIND>_BACKEND forces one of the agent's sensor backends (window, idle,
# input, and any kind added later)
BACKEND_VARIABLE = re.compile(r"WORKLENS_[A-Z0-9]+_BACKEND")
# how alike a section name must be to one of this program's to count as misspelt:
# a typo scores >= 0.8, the other program's sections <= 0.5 (tests/shared/test_config.py)
MISSPELT_SECTION = 0.75


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names the key."""


def duration(default: float, *, minimum: float = 0.0) -> Any:
    """A dataclass field holding seconds, written in config as ``10s``/``5m``..."""
    return dataclasses.field(
        default=default,
        metadata={"duration": True, "check": (lambda v: minimum <= v <= MAX_SECONDS,
                                              f"{DURATION_EXPECTED} of at least {minimum:g}s "
                                              "and at most 36500d")},
    )


def setting(default: Any = dataclasses.MISSING, *, check: Callable[[Any], bool] | None = None,
            expect: str = "", factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with an extra validity check and the phrase for errors."""
    meta = {"check": (check, expect)} if check else {}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def load(cls: type[T], path: Path | None = None, env: Mapping[str, str] | None = None,
         overrides: Mapping[str, Mapping[str, Any]] | None = None) -> T:
    """Build ``cls`` from defaults < TOML file < environment < overrides (flags).

    ``overrides`` maps section -> key -> value; None values are ignored so that
    unset flags can be passed straight through.
    """
    raw: dict[str, dict[str, Any]] = {}
    if path is not None:
        raw = _read_toml(Path(path))
    env = os.environ if env is None else env
    sections = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in raw:
        if name not in sections:
            raise ConfigError(f"config: unknown section [{name}] in {path} "
                              f"(known: {', '.join(sections)})")
    _check_environment(cls, env)
    built = {}
    for name, field in sections.items():
        section_cls = _resolve(cls, field)
        values = dict(raw.get(name, {}))
        sources = dict.fromkeys(values, f" in {path}")
        for key in list(values):
            if key not in {f.name for f in dataclasses.fields(section_cls)}:
                raise ConfigError(f"config: unknown key [{name}] {key} in {path}")
        for f in dataclasses.fields(section_cls):
            env_key = f"{ENV_PREFIX}{name.upper()}_{f.name.upper()}"
            if env_key in env:
                values[f.name] = _from_env(env[env_key], _resolve(section_cls, f), env_key)
                sources[f.name] = f" from {env_key}"
        for key, value in ((overrides or {}).get(name) or {}).items():
            if value is not None:
                values[key] = value
                sources[key] = " from the command line"
        built[name] = _build_section(section_cls, name, values, sources)
    return cls(**built)


def _check_environment(cls: type, env: Mapping[str, str]) -> None:
    """Reject a ``WORKLENS_*`` variable that is meant for this program but names
    no setting, as a misspelt key in the file is rejected.

    Meant for this program: it starts with one of this program's sections
    (``WORKLENS_SAMPLING_IDLE_TRESHOLD``), or with a word that is a near miss of
    one (``WORKLENS_SAMPLNG_IDLE_THRESHOLD``). Anything else is left alone: the
    agent and the collector may share an environment (``make run``, a shell, a
    container), and each must ignore the other's sections (``WORKLENS_GRPC_LISTEN``
    for the agent) without knowing them.
    """
    names = _variable_names(cls)
    own = sorted((name.upper() for name in names), key=len, reverse=True)
    for variable in env:
        if (not variable.startswith(ENV_PREFIX) or variable in OTHER_VARIABLES
                or BACKEND_VARIABLE.fullmatch(variable)
                or any(variable in keys for keys in names.values())):
            continue
        rest = variable[len(ENV_PREFIX):]
        section = next((s for s in own if rest == s or rest.startswith(f"{s}_")), None)
        if section is not None:
            where = f"[{section.lower()}] {rest[len(section) + 1:].lower()}".rstrip()
            raise ConfigError(f"config: unknown key {where} from {variable}"
                              f"{_did_you_mean(variable, names)}")
        word = rest.split("_", 1)[0]
        if difflib.get_close_matches(word, own, n=1, cutoff=MISSPELT_SECTION):
            raise ConfigError(f"config: unknown section [{word.lower()}] from {variable}"
                              f"{_did_you_mean(variable, names)}")


def _variable_names(cls: type) -> dict[str, set[str]]:
    """section -> the ``WORKLENS_<SECTION>_<KEY>`` names of its keys, from the dataclasses."""
    return {section.name: {f"{ENV_PREFIX}{section.name.upper()}_{f.name.upper()}"
                           for f in dataclasses.fields(_resolve(cls, section))}
            for section in dataclasses.fields(cls)}


def _did_you_mean(variable: str, names: dict[str, set[str]]) -> str:
    every = [name for keys in names.values() for name in keys]
    close = difflib.get_close_matches(variable, every, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config: file not found: {path}") from None
    except PermissionError:
        raise ConfigError(f"config: cannot read {path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(f"config: {path}: top-level key {name!r} must be a [section]")
    return data


def _resolve(owner: type, field: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(owner)
    return hints[field.name]


def _from_env(text: str, typ: Any, env_key: str) -> Any:
    """Environment values are strings; lists accept a TOML array or commas."""
    if _is_list(typ):
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                return tomllib.loads(f"v = {stripped}")["v"]
            except tomllib.TOMLDecodeError:
                raise ConfigError(f"config: {env_key}: expected a TOML array such as "
                                  f"[\"a\", \"b\"]") from None
        return [part.strip() for part in stripped.split(",") if part.strip()]
    return text


def _is_list(typ: Any) -> bool:
    return typing.get_origin(typ) is list


def _build_section(section_cls: type, name: str, values: dict[str, Any],
                   sources: dict[str, str]) -> Any:
    """``sources`` says where each value came from, so the error can point there."""
    kwargs = {}
    for f in dataclasses.fields(section_cls):
        if f.name not in values:
            continue
        kwargs[f.name] = _coerce(values[f.name], _resolve(section_cls, f), f,
                                 f"[{name}] {f.name}", sources.get(f.name, ""))
    try:
        obj = section_cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"config: [{name}] {exc}") from None
    for f in dataclasses.fields(section_cls):
        check, expect = f.metadata.get("check", (None, ""))
        value = getattr(obj, f.name)
        if check is not None and value is not None and not check(value):
            shown = values.get(f.name, value)  # as the person wrote it, e.g. "1h"
            raise ConfigError(f"config: [{name}] {f.name} = {shown!r}{sources.get(f.name, '')}:"
                              f" expected {expect}")
    return obj


def _coerce(value: Any, typ: Any, field: dataclasses.Field, where: str, source: str) -> Any:
    optional = False
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        optional = len(args) < len(typing.get_args(typ))
        typ = args[0]
    if optional and (value is None or value == ""):
        return None
    try:
        if field.metadata.get("duration"):
            return value if isinstance(value, int | float) and not isinstance(value, bool) \
                else parse_duration(value)
        if typ is bool:
            return _to_bool(value)
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        if typ is Path:
            return Path(os.path.expanduser(str(value)))
        if _is_list(typ):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError
            return list(value)
    except ValueError as exc:
        detail = str(exc) if field.metadata.get("duration") else f"expected {_describe(typ)}"
        raise ConfigError(f"config: {where} = {value!r}{source}: {detail}") from None
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _describe(typ: Any) -> str:
    if typ is bool:
        return "true or false"
    if typ is int:
        return "a whole number"
    if typ is float:
        return "a number"
    if _is_list(typ):
        return "a list of strings"
    return "a string"


def system_config_file(program: str) -> Path | None:
    """The config file an installer puts in place for ``program`` ("agent" or
    "collector"), when it exists: ``WORKLENS_CONFIG`` first, then the platform's
    system location (``/etc/worklens/agent.toml`` on Linux). This lets IT or the
    employee run a plain ``worklens-agent status`` and see the settings the
    service uses, without knowing where the package put them."""
    if os.environ.get("WORKLENS_CONFIG"):
        return Path(os.environ["WORKLENS_CONFIG"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "Worklens"
    elif sys.platform == "darwin":
        base = Path("/Library/Application Support/Worklens")
    else:
        base = Path("/etc/worklens")
    path = base / f"{program}.toml"
    return path if path.is_file() else None


@dataclass
class LogSection:
    """``[log]``, the same in both programs."""

    level: str = setting("INFO", check=lambda s: s.upper() in
                         ("DEBUG", "INFO", "WARNING", "ERROR"),
                         expect="one of DEBUG, INFO, WARNING, ERROR")


def default_data_dir(program: str) -> Path:
    """The platform's per-user data directory for ``program`` ("agent" or
    "collector"), unless WORKLENS_DATA_DIR says otherwise."""
    if os.environ.get("WORKLENS_DATA_DIR"):
        return Path(os.environ["WORKLENS_DATA_DIR"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "Worklens" / program
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Worklens" / program
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "worklens" / program
