"""Session fixtures for the packaging tests: ``make package`` runs once per
session (it reuses bundles whose sources did not change), the upgrade target
is the same bundles packaged as a later version, and each test that installs
gets a fresh copy of a cached debootstrap root."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging_support import (
    DebianRoot,
    Packages,
    cached_root_tarball,
    debian_root,
    make_package,
    missing_root_tools,
    rebuild_packages,
)


@pytest.fixture(scope="session")
def packages() -> Packages:
    return make_package()


@pytest.fixture(scope="session")
def next_packages(packages: Packages, tmp_path_factory: pytest.TempPathFactory) -> Packages:
    """The upgrade target: a later version of the same build."""
    return rebuild_packages(f"{packages.version}+upgrade.1", tmp_path_factory.mktemp("next"))


@pytest.fixture(scope="session")
def root_tarball() -> Path:
    missing = missing_root_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} for a throwaway Debian root")
    return cached_root_tarball()


@pytest.fixture
def root(root_tarball: Path, tmp_path: Path) -> DebianRoot:
    with debian_root(root_tarball, tmp_path / "root") as fresh:
        yield fresh
