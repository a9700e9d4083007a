"""``make package``: the self-contained PyInstaller bundles of both programs and
the .deb/.rpm packages around them, all in ``dist/``.

    python packaging/build.py [bundles|packages|all] [--version V] [--out DIR]

WHY a script and not Makefile lines: a bundle takes minutes of CPU, so it is
rebuilt only when what goes into it changed (a hash of our sources, the specs
and the installed distributions' versions), while the packages (seconds) are
always rebuilt — e.g. twice with different ``--version`` to test an upgrade.
The package version defaults to ``WORKLENS_PKG_VERSION`` or the Python
package's version.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The bundles are always in dist/: the nfpm configs name them relative to the repo.
DIST = REPO / "dist"
WORK = REPO / "build" / "pyinstaller"
PROGRAMS = ("agent", "collector")
PACKAGERS = ("deb", "rpm")
# What a bundle is made of: when none of it changed, the bundle is reused.
SOURCE_ROOTS = ("agent", "collector", "common", "protos/worklens", "packaging/pyinstaller")
# nfpm speaks Debian architecture names and translates them for rpm.
NFPM_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm7"}

log = logging.getLogger("worklens.package")


def tool(name: str) -> str:
    """A tool installed next to this Python (the venv's bin/) or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        sys.exit(f"build: {name} not found; run `pip install -e '.[collector,dev]'` "
                 f"(it ships {name})")
    return found


def sources_hash() -> str:
    """Content hash of everything that ends up in a bundle."""
    digest = hashlib.sha256()
    files = [REPO / "pyproject.toml", Path(__file__).resolve()]
    for root in SOURCE_ROOTS:
        files += sorted(p for p in (REPO / root).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    for dist in sorted(f"{d.metadata['Name']}=={d.version}"
                       for d in importlib.metadata.distributions()):
        digest.update(dist.encode())
    return digest.hexdigest()


def build_bundle(program: str, dist: Path, work: Path) -> Path:
    """Run PyInstaller for ``program`` unless an identical bundle already exists."""
    bundle = dist / f"worklens-{program}"
    stamp = work / f"worklens-{program}.sources"
    wanted = sources_hash()
    if (bundle / f"worklens-{program}").exists() and stamp.exists() \
            and stamp.read_text() == wanted:
        log.info("bundle %s is up to date", bundle)
        return bundle
    log.info("building bundle %s (PyInstaller, a few minutes)", bundle)
    started = time.monotonic()
    # pynput picks its backend when imported; on a build machine without a display
    # its PyInstaller hook could not import it to list the submodules.
    env = {**os.environ, "PYNPUT_BACKEND": "dummy"}
    subprocess.run([tool("pyinstaller"), "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(dist), "--workpath", str(work),
                    str(REPO / "packaging" / "pyinstaller" / f"worklens-{program}.spec")],
                   check=True, cwd=REPO, env=env)
    stamp.write_text(wanted)
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    log.info("bundle %s: %.1f MB in %.0f s", bundle, size / 1e6, time.monotonic() - started)
    return bundle


def package_path(program: str, packager: str, version: str, dist: Path) -> Path:
    """The file name each distribution's tools expect for this package."""
    if packager == "deb":
        return dist / f"worklens-{program}_{version}_{nfpm_arch()}.deb"
    return dist / f"worklens-{program}-{version}-1.{platform.machine()}.rpm"


def nfpm_arch() -> str:
    return NFPM_ARCH.get(platform.machine(), platform.machine())


def build_packages(program: str, out: Path, version: str) -> list[Path]:
    """The .deb and .rpm for ``program`` from its bundle in dist/ (nfpm, seconds)."""
    env = {**os.environ, "WORKLENS_PKG_VERSION": version, "WORKLENS_PKG_ARCH": nfpm_arch()}
    config = REPO / "packaging" / "linux" / f"nfpm-{program}.yaml"
    built = []
    for packager in PACKAGERS:
        target = package_path(program, packager, version, out)
        subprocess.run([tool("nfpm"), "package", "--config", str(config),
                        "--packager", packager, "--target", str(target)],
                       check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
        log.info("package %s (%.1f MB)", target, target.stat().st_size / 1e6)
        built.append(target)
    return built


def default_version() -> str:
    return os.environ.get("WORKLENS_PKG_VERSION") or importlib.metadata.version("worklens")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", nargs="?", choices=("bundles", "packages", "all"), default="all")
    parser.add_argument("--version", default=None, help="package version (default: "
                        "WORKLENS_PKG_VERSION or the Python package's version)")
    parser.add_argument("--out", type=Path, default=DIST,
                        help="where the packages go (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    for directory in (DIST, WORK, args.out):
        directory.mkdir(parents=True, exist_ok=True)
    for program in PROGRAMS:
        if args.step in ("bundles", "all"):
            build_bundle(program, DIST, WORK)
        if args.step in ("packages", "all"):
            if not (DIST / f"worklens-{program}" / f"worklens-{program}").exists():
                sys.exit(f"build: no bundle in {DIST}/worklens-{program}; "
                         "run `python packaging/build.py bundles` first")
            build_packages(program, args.out.resolve(), args.version or default_version())
    return 0


if __name__ == "__main__":
    sys.exit(main())
