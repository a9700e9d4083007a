"""`make package` and the Linux packages it builds, installed for real.

The .deb files go into a throwaway Debian root made by debootstrap (minbase +
Debian's systemd, no Python) and run there: the bundled programs, the
maintainer scripts, the units through the target's own ``systemd-analyze``,
an upgrade, removal and purge. The .rpm files are checked with the rpm tool
and their scriptlets run by ``rpm --root`` in such a root.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from packaging_support import SESSION_PATH, DebianRoot, Packages
from polling import wait_for

# The first test's setup runs `make package` (PyInstaller) and debootstrap: minutes
# on a cold machine, more than the suite's default per-test timeout.
pytestmark = [pytest.mark.system, pytest.mark.timeout(1200)]

AGENT_CONFIG = "/etc/worklens/agent.toml"
COLLECTOR_CONFIG = "/etc/worklens/collector.toml"
AGENT_UNIT = "/usr/lib/systemd/user/worklens-agent.service"
COLLECTOR_UNIT = "/usr/lib/systemd/system/worklens-collector.service"
LAUNCHER = "/usr/libexec/worklens/worklens-agent-session"
GNOME_EXTENSION = tuple(f"/usr/share/gnome-shell/extensions/{uuid}/{name}"
                        for uuid in ("focus@worklens.org", "focus-legacy@worklens.org")
                        for name in ("metadata.json", "extension.js",
                                     "org.worklens.FocusedWindow1.xml"))
DCONF_DEFAULT = "/etc/dconf/db/local.d/50-worklens-agent"
SWAY_SNIPPET = "/etc/sway/config.d/50-worklens-agent.conf"
AUTOSTART = "/etc/xdg/autostart/worklens-agent.desktop"
SCRIPTS = ("postinst", "prerm", "postrm")
# A desktop session's environment: no Python anywhere, agent sensors that need
# no display, and intervals short enough for a test.
FAST_AGENT = {"PATH": SESSION_PATH,
              "WORKLENS_SAMPLING_WINDOW_BACKEND": "none", "WORKLENS_SAMPLING_IDLE_BACKEND": "none",
              "WORKLENS_SAMPLING_WINDOW_INTERVAL": "200ms",
              "WORKLENS_SAMPLING_PROCESS_INTERVAL": "1s", "WORKLENS_DELIVERY_FLUSH_INTERVAL": "1s"}


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def deb_listing(deb: Path) -> dict[str, str]:
    """path -> tar mode string for every entry of a .deb's data."""
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                         check=True).stdout
    entries = {}
    for line in out.splitlines():
        fields = line.split()
        path = fields[5].removeprefix(".")
        entries[path.rstrip("/") or "/"] = f"{fields[0]} {fields[1]}"
    return entries


def deb_control(deb: Path, tmp_path: Path) -> Path:
    control = tmp_path / f"control-{deb.stem}"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    return control


def collector_serve(root: DebianRoot):
    """The packaged collector as its unit runs it (as `worklens`), on free ports."""
    proc = root.start("worklens-collector", "serve", "--config", COLLECTOR_CONFIG,
                      "--data-dir", "/var/lib/worklens", "--grpc-listen", "127.0.0.1:0",
                      "--http-listen", "127.0.0.1:0", user="worklens",
                      env={"PATH": SESSION_PATH})
    wait_for(lambda: "collector ready" in proc.stderr or proc.proc.poll() is not None,
             what="the bundled collector to start")
    assert proc.proc.poll() is None, proc.stderr
    address = proc.stderr.split("gRPC listening on ")[1].split()[0]
    return proc, address


def admin(root: DebianRoot, *args: str) -> str:
    """An operator command as the README "Install" says: `sudo -u worklens worklens-collector`."""
    return root.run("worklens-collector", *args, "--config", COLLECTOR_CONFIG, user="worklens",
                    env={"PATH": SESSION_PATH}).stdout


def agent_status(root: DebianRoot, user: str) -> dict:
    """`status --json`; its exit code is 1 while the agent could not deliver."""
    done = root.run("worklens-agent", "status", "--json", "--config", AGENT_CONFIG, user=user,
                    env={"PATH": SESSION_PATH, "WORKLENS_SAMPLING_WINDOW_BACKEND": "none",
                         "WORKLENS_SAMPLING_IDLE_BACKEND": "none"}, check=False)
    facts = json.loads(done.stdout)
    assert done.returncode == (0 if facts["ok"] else 1), done.stderr
    return facts


# -- what was built -----------------------------------------------------------------------

def test_make_package_builds_deb_and_rpm_for_both_programs(packages: Packages,
                                                          tmp_path: Path) -> None:
    agent = deb_listing(packages.agent_deb)
    for path in ("/opt/worklens/agent/worklens-agent", AGENT_UNIT, AGENT_CONFIG, AUTOSTART,
                 LAUNCHER):
        assert path in agent, f"{path} missing from {packages.agent_deb.name}"
    assert agent["/usr/bin/worklens-agent"].startswith("l")   # a symlink into the bundle
    assert agent[AGENT_CONFIG].startswith("-rw-r--r-- root/root")
    assert agent[LAUNCHER].startswith("-rwxr-xr-x root/root")
    # Wayland: the GNOME Shell extension in the system-wide folder, enabled by a dconf
    # default; sway starts the launcher; the KWin script ships inside the bundle
    for path in (*GNOME_EXTENSION, DCONF_DEFAULT, SWAY_SNIPPET):
        assert agent[path].startswith("-rw-r--r-- root/root"), path
    assert any(p.endswith("/worklens/agent/sensors/window/kwin_focus.js") for p in agent)
    collector = deb_listing(packages.collector_deb)
    for path in ("/opt/worklens/collector/worklens-collector", COLLECTOR_UNIT, COLLECTOR_CONFIG):
        assert path in collector, f"{path} missing from {packages.collector_deb.name}"
    # the store's migrations and the dashboard are data the bundle must carry
    inside = "/opt/worklens/collector/_internal/worklens/collector/"
    assert any(p.startswith(inside + "store/migrations/") and p.endswith(".sql")
               for p in collector)
    assert any(p.startswith(inside + "http/static/") for p in collector)

    conffiles = (deb_control(packages.agent_deb, tmp_path) / "conffiles").read_text().split()
    assert sorted(conffiles) == sorted([AGENT_CONFIG, AUTOSTART, DCONF_DEFAULT, SWAY_SNIPPET])
    conffiles = (deb_control(packages.collector_deb, tmp_path) / "conffiles").read_text().split()
    assert conffiles == [COLLECTOR_CONFIG]

    need("rpm")
    for rpm, name, config in ((packages.agent_rpm, "worklens-agent", AGENT_CONFIG),
                              (packages.collector_rpm, "worklens-collector", COLLECTOR_CONFIG)):
        query = subprocess.run(["rpm", "-qp", "--queryformat", "%{NAME} %{VERSION}\n", str(rpm)],
                               capture_output=True, text=True, check=True).stdout.split()
        assert query == [name, packages.version]
        configs = subprocess.run(["rpm", "-qp", "--configfiles", str(rpm)], capture_output=True,
                                 text=True, check=True).stdout.split()
        assert config in configs
        scripts = subprocess.run(["rpm", "-qp", "--scripts", str(rpm)], capture_output=True,
                                 text=True, check=True).stdout
        assert "postinstall scriptlet" in scripts and "preuninstall scriptlet" in scripts


def test_maintainer_scripts_pass_shellcheck(packages: Packages, tmp_path: Path) -> None:
    need("shellcheck")
    shipped = [deb_control(deb, tmp_path) / script
               for deb in (packages.agent_deb, packages.collector_deb) for script in SCRIPTS]
    extract = tmp_path / "agent-data"
    subprocess.run(["dpkg-deb", "-x", str(packages.agent_deb), str(extract)], check=True)
    shipped.append(extract / LAUNCHER.lstrip("/"))
    done = subprocess.run(["shellcheck", "--shell=sh", "--severity=style", *map(str, shipped)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_autostart_entry_defers_to_the_systemd_user_unit(packages: Packages,
                                                        tmp_path: Path) -> None:
    extract = tmp_path / "agent-data"
    subprocess.run(["dpkg-deb", "-x", str(packages.agent_deb), str(extract)], check=True)
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(extract / AUTOSTART.lstrip("/"))
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"] == desktop["TryExec"] == LAUNCHER
    # systemd's autostart generator must not make a second unit next to ours
    assert desktop["X-systemd-skip"] == "true"
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read(extract / AGENT_UNIT.lstrip("/"))
    assert unit["Service"]["ExecStart"] == \
        "/usr/bin/worklens-agent run --config /etc/worklens/agent.toml"
    assert unit["Service"]["Restart"] == "on-failure"
    assert int(unit["Unit"]["StartLimitBurst"]) > 0
    assert unit["Install"]["WantedBy"] == "graphical-session.target"


# -- installed for real -------------------------------------------------------------------

def test_agent_installs_seeded_and_runs_without_python(packages: Packages,
                                                       root: DebianRoot) -> None:
    assert not list((root / "usr/bin").glob("python*")), "the target root must have no Python"
    root.install(packages.agent_deb, env={"WORKLENS_COLLECTOR": "collector.example.org:50051",
                                          "WORKLENS_ENROLL_SECRET": "wl_abc_DEF-123"})
    config = (root / AGENT_CONFIG).read_text()
    assert 'address = "collector.example.org:50051"' in config
    assert 'enroll_secret = "wl_abc_DEF-123"' in config
    assert (root / AGENT_CONFIG).stat().st_mode & 0o777 == 0o644   # every user's agent reads it
    # enabled for all users: the --global link in the target's systemd layout
    wants = root / "etc/systemd/user/graphical-session.target.wants/worklens-agent.service"
    assert os.readlink(wants) == AGENT_UNIT

    root.add_user("alice")
    version = root.run("worklens-agent", "--version", user="alice", env={"PATH": SESSION_PATH})
    assert version.stdout.strip() == f"worklens-agent {packages.version.split('+')[0]}"
    status = agent_status(root, "alice")
    assert status["enrolled"] is False and status["will_self_enroll"] is True
    assert status["collector"]["address"] == "collector.example.org:50051"
    human = root.run("worklens-agent", "status", "--config", AGENT_CONFIG, user="alice",
                     env=FAST_AGENT, check=False).stdout   # exit 1: no collector there
    assert "never recorded" in human

    agent = root.start("worklens-agent", "run", "--print", "--config", AGENT_CONFIG,
                       user="alice", env=FAST_AGENT)
    wait_for(lambda: '"record": "process"' in agent.stdout or agent.proc.poll() is not None,
             what="process samples from the bundled agent")
    assert agent.terminate() == 0, agent.stderr
    records = [json.loads(line) for line in agent.stdout.splitlines()]
    assert {"process", "system"} <= {r["record"] for r in records}


def test_bundled_agent_reads_the_focused_window_on_a_real_display(packages: Packages,
                                                                  root: DebianRoot) -> None:
    """pynput's and Xlib's X backends are imported by name: only a real display proves
    the bundle carries them."""
    desktop = pytest.importorskip("desktop")
    if desktop.missing_programs():
        pytest.skip(f"needs {', '.join(desktop.missing_programs())}")
    root.install(packages.agent_deb)
    root.add_user("alice")
    title = "Packaged agent sees this - q4-7f3a"
    with desktop.Desktop.start() as desk:
        desk.activate(desk.open_window(title))
        env = {**FAST_AGENT, "DISPLAY": desk.display}
        del env["WORKLENS_SAMPLING_WINDOW_BACKEND"], env["WORKLENS_SAMPLING_IDLE_BACKEND"]
        agent = root.start("worklens-agent", "run", "--print", "--config", AGENT_CONFIG,
                           user="alice", env=env)
        wait_for(lambda: "sampling every" in agent.stderr or agent.proc.poll() is not None,
                 what="the bundled agent to start sampling")
        assert "window: x11" in agent.stderr, agent.stderr
        desk.type("abcde")
        # spans close at stop: wait until the agent has seen the keys (its next sample)
        wait_for(lambda: agent.proc.poll() is not None or '"record": "process"' in agent.stdout,
                 what="a full sampling round")
        assert agent.terminate() == 0, agent.stderr
    records = [json.loads(line) for line in agent.stdout.splitlines()]
    assert any(r["record"] == "window" and r.get("title") == title for r in records), \
        agent.stdout[-2000:] + agent.stderr
    assert sum(r.get("key_presses", 0) for r in records if r["record"] == "activity") >= 5


def test_units_pass_systemd_analyze_in_the_target(packages: Packages, root: DebianRoot) -> None:
    root.install(packages.agent_deb, packages.collector_deb)
    for unit, flags in ((COLLECTOR_UNIT, []), (AGENT_UNIT, ["--user"])):
        done = root.run("systemd-analyze", *flags, "verify", "--man=no", unit, check=False,
                        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": "/tmp"})
        assert done.returncode == 0, done.stderr
        # unknown or misspelt keys are only warnings: there must be none for our units
        assert Path(unit).name not in done.stderr, done.stderr
    security = root.run("systemd-analyze", "security", "--offline=true", "--threshold=20",
                        "--no-pager", COLLECTOR_UNIT, check=False, env={"PATH": "/usr/bin:/bin"})
    assert security.returncode == 0, security.stdout[-1500:] + security.stderr
    assert "Overall exposure level for worklens-collector.service" in security.stdout


def test_collector_installs_as_a_dedicated_user_with_private_state(packages: Packages,
                                                                   root: DebianRoot) -> None:
    root.install(packages.collector_deb)
    uid, gid, home = root.user("worklens")
    assert home == "/var/lib/worklens" and uid < 1000
    state = (root / "var/lib/worklens").stat()
    assert (state.st_uid, state.st_gid, state.st_mode & 0o777) == (uid, gid, 0o750)
    config = (root / COLLECTOR_CONFIG).stat()
    assert (config.st_uid, config.st_gid, config.st_mode & 0o777) == (0, gid, 0o640)
    assert (root / "etc/systemd/system/multi-user.target.wants/worklens-collector.service") \
        .is_symlink()
    version = root.run("worklens-collector", "--version", user="worklens",
                       env={"PATH": SESSION_PATH})
    assert version.stdout.startswith("worklens-collector ")


def test_installed_agent_enrolls_from_seeded_config_and_delivers(packages: Packages,
                                                                 root: DebianRoot) -> None:
    root.install(packages.collector_deb)
    collector, address = collector_serve(root)
    secret = admin(root, "token", "create", "--role", "enroll", "--name", "rollout").split()[0]
    # IT's one command: the package seeds the config from the installer's environment
    root.install(packages.agent_deb, env={"WORKLENS_COLLECTOR": address,
                                          "WORKLENS_ENROLL_SECRET": secret})
    root.add_user("alice")
    agent = root.start("worklens-agent", "run", "--config", AGENT_CONFIG, user="alice",
                       env=FAST_AGENT)

    def acked() -> dict | None:
        assert agent.proc.poll() is None, agent.stderr
        status = agent_status(root, "alice")
        return status if status["spool"]["last_ack_ms"] else None

    status = wait_for(acked, timeout=120, interval=1.0, what="a batch acknowledged")
    assert status["enrolled"] and status["collector"]["reachable"] is True and status["ok"]
    assert agent.terminate() == 0, agent.stderr
    assert collector.terminate() == 0, collector.stderr

    _, _, home = root.user("alice")
    credential = [p for p in (root / home.lstrip("/") / ".local/share/worklens/agent").iterdir()
                  if "cred" in p.name]
    assert credential and all(p.stat().st_mode & 0o077 == 0 for p in credential)
    with sqlite3.connect(root / "var/lib/worklens/worklens.db") as db:
        agents = db.execute("SELECT id, agent_id, username FROM agents").fetchall()
        assert [a[1:] for a in agents] == [(status["agent_id"], "alice")]
        batches = db.execute("SELECT count(*) FROM batches WHERE agent = ?", (agents[0][0],))
        samples = db.execute("SELECT sum(samples) FROM process_blocks WHERE agent = ?",
                             (agents[0][0],))
        assert batches.fetchone()[0] >= 1 and samples.fetchone()[0] >= 1


def test_upgrade_keeps_config_edits_credentials_and_data(packages: Packages,
                                                         next_packages: Packages,
                                                         root: DebianRoot) -> None:
    root.install(packages.agent_deb, packages.collector_deb,
                 env={"WORKLENS_COLLECTOR": "127.0.0.1:50051", "WORKLENS_ENROLL_SECRET": "s1"})
    # an admin's edits and the data of both programs
    edited = (root / AGENT_CONFIG).read_text().replace("# capture_titles = true",
                                                       "capture_titles = false")
    (root / AGENT_CONFIG).write_text(edited)
    with (root / COLLECTOR_CONFIG).open("a") as f:
        f.write('\n# site note kept across upgrades\n')
    collector_config = (root / COLLECTOR_CONFIG).read_text()
    admin(root, "token", "create", "--role", "viewer", "--name", "kept-token")
    root.add_user("alice")
    # alice's agent spools while its collector is unreachable
    agent = root.start("worklens-agent", "run", "--config", AGENT_CONFIG, user="alice",
                       env=FAST_AGENT)
    wait_for(lambda: agent.proc.poll() is not None or
             sum(agent_status(root, "alice")["spool"][k] for k in ("events", "unsealed_records"))
             > 0, interval=1.0,
             what="records in the agent's spool")
    assert agent.terminate() == 0, agent.stderr
    spool = agent_status(root, "alice")["spool"]
    db_before = (root / "var/lib/worklens/worklens.db").stat().st_size

    root.install(next_packages.agent_deb, next_packages.collector_deb)

    versions = root.dpkg("-s", "worklens-agent", "worklens-collector").stdout
    assert versions.count(f"Version: {next_packages.version}-1") == 2, versions
    assert (root / AGENT_CONFIG).read_text() == edited
    assert (root / COLLECTOR_CONFIG).read_text() == collector_config
    assert (root / "var/lib/worklens/worklens.db").stat().st_size >= db_before
    assert "kept-token" in admin(root, "token", "list")
    after = agent_status(root, "alice")["spool"]
    assert (after["batches"], after["events"]) == (spool["batches"], spool["events"])
    assert (root / "etc/systemd/user/graphical-session.target.wants/worklens-agent.service") \
        .is_symlink()
    # the same credentials, and a new secret from IT replaces only the secret
    root.install(next_packages.agent_deb, env={"WORKLENS_ENROLL_SECRET": "s2"})
    reseeded = (root / AGENT_CONFIG).read_text()
    assert 'enroll_secret = "s2"' in reseeded and "capture_titles = false" in reseeded
    assert root.run("worklens-agent", "--version", env={"PATH": SESSION_PATH}).returncode == 0


def test_remove_stops_agents_and_purge_deletes_data(packages: Packages,
                                                    root: DebianRoot) -> None:
    root.install(packages.agent_deb, packages.collector_deb)
    admin(root, "token", "create", "--role", "viewer")
    root.add_user("alice")
    # a session without a systemd user manager: the autostart launcher runs the agent
    session = root.start(LAUNCHER, "--print", user="alice",
                         env={**FAST_AGENT, "WORKLENS_RESTART_DELAY": "1"})
    wait_for(lambda: '"record"' in session.stdout or session.proc.poll() is not None,
             what="the agent started by the autostart launcher")
    assert session.proc.poll() is None, session.stderr

    root.dpkg("--remove", "worklens-agent", "worklens-collector")
    assert session.proc.wait(60) == 0, session.stderr    # stopped cleanly, not restarted
    assert not (root / "opt/worklens/agent").exists()
    assert not (root / "usr/bin/worklens-collector").exists()
    assert (root / AGENT_CONFIG).exists() and (root / COLLECTOR_CONFIG).exists()  # remove keeps
    assert (root / "var/lib/worklens/worklens.db").exists()

    root.dpkg("--purge", "worklens-agent", "worklens-collector")
    assert not (root / "var/lib/worklens").exists()
    assert not (root / "etc/worklens").exists()
    assert not list((root / "etc/systemd").rglob("worklens-*"))


def test_rpm_scriptlets_install_upgrade_and_erase(packages: Packages, next_packages: Packages,
                                                  root: DebianRoot) -> None:
    """rpm's scriptlets get 1/2/0 instead of dpkg's words; run them in a root."""
    need("rpm")

    def rpm(*args: str, env: dict[str, str] | None = None) -> None:
        done = subprocess.run(["rpm", "--root", str(root.path), "--nodeps", *args],
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                                   **(env or {})})
        assert done.returncode == 0, done.stderr

    rpm("-i", str(packages.agent_rpm), str(packages.collector_rpm),
        env={"WORKLENS_COLLECTOR": "10.1.2.3:50051", "WORKLENS_ENROLL_SECRET": "rpm_secret"})
    assert 'enroll_secret = "rpm_secret"' in (root / AGENT_CONFIG).read_text()
    assert root.user("worklens")[2] == "/var/lib/worklens"
    wants = root / "etc/systemd/user/graphical-session.target.wants/worklens-agent.service"
    assert wants.is_symlink()
    rpm("-U", str(next_packages.agent_rpm), str(next_packages.collector_rpm))
    assert wants.is_symlink(), "an upgrade must not disable the agent"
    assert 'address = "10.1.2.3:50051"' in (root / AGENT_CONFIG).read_text()
    rpm("-e", "worklens-agent", "worklens-collector")
    assert not wants.is_symlink()
    assert not (root / "opt/worklens/agent/worklens-agent").exists()


def test_postinst_refuses_a_malformed_collector_address(packages: Packages,
                                                        root: DebianRoot) -> None:
    done = root.install(packages.agent_deb, check=False,
                        env={"WORKLENS_COLLECTOR": 'evil"; rm -rf /'})
    assert done.returncode != 0
    assert "WORKLENS_COLLECTOR must be HOST:PORT" in done.stderr
    assert 'address = ""' in (root / AGENT_CONFIG).read_text()
