"""What every Worklens PyInstaller spec shares: the modules PyInstaller cannot
find by reading imports, the data files the programs open at run time, and the
one Analysis/EXE/COLLECT recipe for a one-dir bundle.

WHY hidden imports at all: both CLIs import their subcommand modules by name
(``importlib.import_module(COMMANDS[...])``), the agent picks its sensor
backends by platform at run time, pynput/Xlib/uvicorn/APScheduler load their
own backends and plugins by name or entry point, so static analysis alone
produces a bundle that starts and then fails on the first real command.

The specs are plain Python executed by PyInstaller, which provides
``Analysis``, ``PYZ``, ``EXE``, ``COLLECT`` (and ``BUNDLE`` on macOS) as
globals; they hand them to :func:`one_dir` so that nothing here needs
PyInstaller's build classes at import time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PyInstaller.utils.hooks import collect_submodules, copy_metadata

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# Sensor backend modules are named for their platform (agent/sensors/*/_x11.py,
# _win32.py, _darwin.py); a bundle carries only its own platform's.
_LINUX_ONLY = ("_x11", "_xorg", "_xconn", "_logind", "_wayland", "_wlroots", "_wlproto",
               "_gnome", "_kde", "_sessionbus")
_FOREIGN_BACKENDS = {
    "linux": ("_win32", "_darwin"),
    "win32": (*_LINUX_ONLY, "_darwin"),
    "darwin": (*_LINUX_ONLY, "_win32"),
}

# Imported on first use by the platform's sensor backends (agent/sensors/_darwin.py
# loads pyobjc lazily; Windows uses ctypes only).
_PLATFORM_MODULES = {
    # logind idle over D-Bus; GNOME/KDE over the session bus; Wayland (pywayland's
    # compiled _ffi needs _cffi_backend, not the excluded cffi package)
    "linux": ["jeepney", "jeepney.io.blocking", "jeepney.io.threading", "pywayland.client",
              "pywayland.protocol.wayland", "pywayland.protocol_core", "_cffi_backend"],
    "win32": [],
    "darwin": ["objc", "Foundation", "AppKit", "Quartz"],
}

_PYNPUT_BACKENDS = {
    "linux": ["pynput._util.xorg", "pynput.keyboard._xorg", "pynput.mouse._xorg"],
    "win32": ["pynput._util.win32", "pynput.keyboard._win32", "pynput.mouse._win32"],
    "darwin": ["pynput._util.darwin", "pynput.keyboard._darwin", "pynput.mouse._darwin"],
}

# Never needed at run time: dev tools, GUI toolkits, and optional imports that
# drag in ~20 MB (requests tries urllib3's pyOpenSSL shim -> cryptography/cffi;
# anyio tries trio; cffi pulls setuptools). TLS is Python's ssl module and grpc's.
EXCLUDES = ["tkinter", "_tkinter", "grpc_tools", "pytest", "_pytest", "ruff", "IPython",
            "cryptography", "cffi", "pycparser", "setuptools", "trio"]


def platform_key(platform: str | None = None) -> str:
    platform = platform or sys.platform
    return "linux" if platform.startswith("linux") else platform


# Where our own packages' sources live in the repository: one import namespace
# over four folders, mapped as pyproject.toml's package-dir does.
_SOURCES = {"worklens": REPO / "protos" / "worklens", "worklens.common": REPO / "common",
            "worklens.agent": REPO / "agent", "worklens.collector": REPO / "collector"}
# PyInstaller finds modules by walking folders on its path, as an installed
# package lies; the repository maps folders to names instead, so the build lays
# the namespace out as installed in a staging folder first.
STAGE = REPO / "build" / "pysrc"


def stage_sources() -> Path:
    """Copy our sources into ``STAGE/worklens/...`` as pip would install them."""
    shutil.rmtree(STAGE, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package, source in _SOURCES.items():
        target = STAGE.joinpath(*package.split("."))
        shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
    return STAGE


def own_modules(package: str, platform: str) -> list[str]:
    """Every module of one of our packages, from its source tree (not from
    whatever ``sys.path`` finds first), minus other platforms' backends."""
    foreign = _FOREIGN_BACKENDS.get(platform, ())
    root = _SOURCES[package]
    base = package.split(".")
    modules = []
    for path in sorted(root.rglob("*.py")):
        parts = [*base, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        if not any(part.startswith(foreign) for part in parts[len(base):]):
            modules.append(".".join(parts))
    return modules


def shared_modules(platform: str) -> list[str]:
    """What both programs carry: the namespace root, the wire contract, common/."""
    return own_modules("worklens", platform) + own_modules("worklens.common", platform)


def agent_hidden_imports(platform: str) -> list[str]:
    hidden = own_modules("worklens.agent", platform) + shared_modules(platform)
    hidden += _PYNPUT_BACKENDS[platform]
    hidden += collect_submodules("apscheduler")   # triggers/executors/jobstores by entry point
    hidden += ["grpc", "grpc._cython.cygrpc", "google.protobuf", "psutil"]
    hidden += _PLATFORM_MODULES[platform]
    if platform == "linux":
        # Xlib loads its protocol extensions (XFIXES, SCREEN-SAVER, ...) by name.
        hidden += collect_submodules("Xlib")
    return hidden


def collector_hidden_imports(platform: str) -> list[str]:
    hidden = own_modules("worklens.collector", platform) + shared_modules(platform)
    # uvicorn resolves its loop/protocol/lifespan implementations from strings.
    hidden += [
        "uvicorn.logging", "uvicorn.loops", "uvicorn.loops.auto", "uvicorn.loops.asyncio",
        "uvicorn.protocols", "uvicorn.protocols.http", "uvicorn.protocols.http.auto",
        "uvicorn.protocols.http.h11_impl", "uvicorn.protocols.websockets",
        "uvicorn.protocols.websockets.auto", "uvicorn.lifespan", "uvicorn.lifespan.on",
    ]
    hidden += collect_submodules("fastapi") + collect_submodules("apscheduler")
    hidden += ["grpc", "grpc._cython.cygrpc", "google.protobuf", "prometheus_client",
               "requests", "psycopg", "psycopg_binary", "psutil"]
    return hidden


def agent_datas() -> list[tuple[str, str]]:
    # `--version` reads the installed distribution's metadata; the KWin script and
    # the Wayland protocol files (with their licences) ship as package data.
    return own_data("worklens.agent") + copy_metadata("worklens") + copy_metadata("apscheduler")


def own_data(package: str) -> list[tuple[str, str]]:
    """Everything in one of our packages that is not code (SQL migrations, the
    dashboard's static files), as (source file, directory in the bundle)."""
    root = _SOURCES[package]
    return [(str(path), str(Path(*package.split("."), path.parent.relative_to(root))))
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.suffix not in (".py", ".pyc")
            and "__pycache__" not in path.parts]


def collector_datas() -> list[tuple[str, str]]:
    # store/migrations/*.sql and http/static/**, plus metadata for --version.
    return own_data("worklens.collector") + copy_metadata("worklens") + copy_metadata("apscheduler")


def analysis_args(program: str, platform: str | None = None) -> dict:
    """Keyword arguments for ``Analysis`` for ``program`` ("agent" or "collector")."""
    platform = platform_key(platform)
    hidden = agent_hidden_imports(platform) if program == "agent" else \
        collector_hidden_imports(platform)
    datas = agent_datas() if program == "agent" else collector_datas()
    return {
        "scripts": [str(HERE / f"{program}_main.py")],
        "pathex": [str(stage_sources())],
        "hiddenimports": sorted(set(hidden)),
        "datas": datas,
        "excludes": EXCLUDES,
        "noarchive": False,
    }


def one_dir(program: str, tools: dict, *, platform: str | None = None,
            extra_exes: dict[str, dict] | None = None, **exe_options):
    """Build the one-dir bundle ``worklens-<program>`` with PyInstaller's ``tools``
    (the spec's globals). ``extra_exes`` adds more launchers over the same
    Analysis (e.g. a windowless ``worklens-agentw.exe`` for the Windows logon
    start). Returns the COLLECT target (a macOS spec wraps it in a BUNDLE)."""
    name = f"worklens-{program}"
    analysis = tools["Analysis"](**analysis_args(program, platform))
    pyz = tools["PYZ"](analysis.pure)
    options = {"console": True, "strip": False, "upx": False, **exe_options}
    exes = [tools["EXE"](pyz, analysis.scripts, [], exclude_binaries=True, name=name, **options)]
    for exe_name, overrides in (extra_exes or {}).items():
        exes.append(tools["EXE"](pyz, analysis.scripts, [], exclude_binaries=True,
                                 name=exe_name, **{**options, **overrides}))
    return tools["COLLECT"](*exes, analysis.binaries, analysis.datas, name=name,
                            strip=options["strip"], upx=False)
