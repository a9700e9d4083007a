"""The installer sources that are not built here (Windows MSI, macOS pkg) and
the PyInstaller recipe shared by every spec: checked for what can be checked
on Linux — that the pieces name each other consistently, that what the MSI
writes is a config the agent accepts, that the MDM profile asks only for what
Apple allows — so a Windows or macOS build has one less way to fail."""

from __future__ import annotations

import plistlib
import posixpath
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from worklens.agent import cli as agent_cli
from worklens.agent import config as agent_config
from worklens.collector import cli as collector_cli

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
WIX = "{http://wixtoolset.org/schemas/v4/wxs}"
BUNDLE_ID = "org.worklens.agent"


def bundle_recipe():
    """packaging/pyinstaller/worklens_bundle.py (imports PyInstaller's hook helpers)."""
    pytest.importorskip("PyInstaller")
    sys.path.insert(0, str(PACKAGING / "pyinstaller"))
    try:
        import worklens_bundle
    finally:
        sys.path.pop(0)
    return worklens_bundle


@pytest.fixture(scope="module")
def recipe():
    return bundle_recipe()


def test_linux_bundles_carry_every_subcommand_module(recipe) -> None:
    """Both CLIs import their subcommands by name: each must be a hidden import."""
    agent = recipe.analysis_args("agent", "linux")
    for module in agent_cli.COMMANDS.values():
        assert module in agent["hiddenimports"]
    assert {"pynput.keyboard._xorg", "pynput.mouse._xorg", "worklens.agent.sensors.window._x11"} \
        <= set(agent["hiddenimports"])
    assert not [m for m in agent["hiddenimports"] if m.endswith(("._win32", "._darwin"))]
    collector = recipe.analysis_args("collector", "linux")
    for target in collector_cli.COMMANDS.values():
        assert target.split(":")[0] in collector["hiddenimports"]
    assert "uvicorn.lifespan.on" in collector["hiddenimports"]
    datas = {Path(dest).as_posix() for _src, dest in collector["datas"]}
    assert "worklens/collector/store/migrations" in datas   # the schema ships as data
    assert any(d.startswith("worklens/collector/http/static") for d in datas)
    # one namespace, two programs: neither bundle carries the other's code
    assert not [m for m in collector["hiddenimports"] if m.startswith("worklens.agent")]
    assert not [m for m in agent["hiddenimports"] if m.startswith("worklens.collector")]


@pytest.mark.parametrize("platform,own,foreign", [
    ("win32", "worklens.agent.sensors.window._win32", "worklens.agent.sensors.window._x11"),
    ("darwin", "worklens.agent.sensors.window._darwin", "worklens.agent.sensors.idle._logind"),
])
def test_other_platforms_bundle_their_own_backends(recipe, platform: str, own: str,
                                                   foreign: str) -> None:
    hidden = recipe.analysis_args("agent", platform)["hiddenimports"]
    assert own in hidden and foreign not in hidden
    assert f"pynput.keyboard._{platform}" in hidden


# -- Linux packages: the documentation --------------------------------------------------

MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]*)[^)]*\)")


def shipped_docs(program: str) -> dict[str, Path]:
    """What nfpm-PROGRAM.yaml puts under /usr/share/doc/worklens-PROGRAM/: the path
    there -> the repository file (a ``src`` glob with a directory ``dst``, as nfpm
    reads it)."""
    root = f"/usr/share/doc/worklens-{program}/"
    text = (PACKAGING / "linux" / f"nfpm-{program}.yaml").read_text()
    shipped = {}
    for src, dst in re.findall(r"- src: (\S+)\n\s+dst: (\S+)", text):
        if not dst.startswith(root):
            continue
        where = dst[len(root):]
        if "*" in src:
            shipped.update({where + path.name: path for path in sorted(REPO.glob(src))})
        else:
            shipped[where] = REPO / src
    return shipped


@pytest.mark.parametrize("program", ["agent", "collector"])
def test_packages_ship_the_docs_with_every_page_they_link_to(program: str) -> None:
    """The README and every docs/ page go to /usr/share/doc/worklens-PROGRAM in the
    repository's layout, so that their relative links work on the installed system."""
    shipped = shipped_docs(program)
    assert {"README.md", "docs/README.md", "docs/configuration.md"} <= set(shipped)
    assert {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")} <= set(shipped)
    broken = []
    for where, source in shipped.items():
        for target in MARKDOWN_LINK.findall(source.read_text(encoding="utf-8")):
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue
            linked = posixpath.normpath(posixpath.join(posixpath.dirname(where), target))
            if linked not in shipped and not (REPO / linked).is_dir():
                broken.append(f"{where} -> {target}")
    assert not broken, f"links to files the {program} package does not install: {broken}"


# -- Windows ------------------------------------------------------------------------------

def wix() -> ET.Element:
    return ET.parse(PACKAGING / "windows" / "worklens-agent.wxs").getroot()


def test_msi_is_per_machine_and_takes_collector_and_secret_properties() -> None:
    package = wix().find(f"{WIX}Package")
    assert package.get("Scope") == "perMachine"
    props = {p.get("Id"): p for p in package.iter(f"{WIX}Property")}
    assert props["COLLECTOR"].get("Secure") == "yes"          # passes to the server side
    assert props["ENROLL_SECRET"].get("Secure") == "yes"
    assert props["ENROLL_SECRET"].get("Hidden") == "yes"      # not written to MSI logs
    assert "ENROLL_SECRET" in props["MsiHiddenProperties"].get("Value").split(";")


def test_msi_starts_the_windowless_agent_at_every_logon_with_its_config() -> None:
    root = wix()
    run = [v for v in root.iter(f"{WIX}RegistryValue")
           if v.get("Key") == r"Software\Microsoft\Windows\CurrentVersion\Run"]
    assert len(run) == 1 and run[0].get("Root") == "HKLM"     # every user, as that user
    command = run[0].get("Value")
    assert command.startswith('"[INSTALLFOLDER]worklens-agentw.exe" run --config ')
    assert '"[CONFIGFOLDER]agent.toml"' in command
    spec = (PACKAGING / "windows" / "worklens-agent.spec").read_text()
    assert '"worklens-agentw": {"console": False}' in spec     # that exe exists, windowless


def test_msi_writes_a_config_the_agent_accepts(tmp_path: Path) -> None:
    """What the IniFile table writes (key=value under [collector]) must load."""
    ini = {f.get("Key"): f for f in wix().iter(f"{WIX}IniFile")}
    assert set(ini) == {"address", "enroll_secret"}
    given = {"COLLECTOR": "collector.example.com:50051", "ENROLL_SECRET": "wl_abc_DEF-12"}
    lines = ["[collector]"]
    for key, entry in ini.items():
        assert entry.get("Section") == "collector" and entry.get("Name") == "agent.toml"
        value = re.sub(r"\[(\w+)\]", lambda m: given[m.group(1)], entry.get("Value"))
        lines.append(f"{key}={value}")       # WritePrivateProfileString's format
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    cfg = agent_config.load(path)
    assert cfg.collector.address == given["COLLECTOR"]
    assert cfg.collector.enroll_secret == given["ENROLL_SECRET"]


# -- macOS --------------------------------------------------------------------------------

def plist(name: str):
    with open(PACKAGING / "macos" / name, "rb") as f:
        return plistlib.load(f)


def test_launch_agent_runs_the_app_bundle_with_the_shared_config() -> None:
    agent = plist("org.worklens.agent.plist")
    assert agent["Label"] == BUNDLE_ID
    exe, *args = agent["ProgramArguments"]
    spec = (PACKAGING / "macos" / "worklens-agent.spec").read_text()
    assert f'name="{Path(exe).parents[2].name}"' in spec       # Worklens Agent.app
    assert f'bundle_identifier="{BUNDLE_ID}"' in spec
    assert Path(exe).name == "worklens-agent"
    assert args[:2] == ["run", "--config"]
    assert args[2] == "/Library/Application Support/Worklens/agent.toml"
    postinstall = (PACKAGING / "macos" / "scripts" / "postinstall").read_text()
    assert 'CONF_DIR="/Library/Application Support/Worklens"' in postinstall
    assert 'CONFIG="$CONF_DIR/agent.toml"' in postinstall
    assert agent["LimitLoadToSessionType"] == "Aqua"            # graphical sessions only
    assert agent["KeepAlive"] == {"SuccessfulExit": False}      # restart on failure


def test_mdm_profile_grants_only_what_apple_allows() -> None:
    profile = plist("worklens-agent.mobileconfig")
    payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    uuids = [profile["PayloadUUID"], *(p["PayloadUUID"] for p in payloads.values())]
    assert len(set(uuids)) == len(uuids)
    services = payloads["com.apple.TCC.configuration-profile-policy"]["Services"]
    for service in ("Accessibility", "ListenEvent", "ScreenCapture"):
        (entry,) = services[service]
        assert entry["Identifier"] == BUNDLE_ID and entry["IdentifierType"] == "bundleID"
        assert f'identifier "{BUNDLE_ID}"' in entry["CodeRequirement"]
    assert services["Accessibility"][0]["Allowed"] is True
    # Input Monitoring and Screen Recording cannot be granted by a profile: only
    # "a standard user may approve"; Allowed and Authorization are exclusive.
    for service in ("ListenEvent", "ScreenCapture"):
        entry = services[service][0]
        assert entry["Authorization"] == "AllowStandardUserToSetSystemService"
        assert "Allowed" not in entry
    settings = payloads[BUNDLE_ID]
    postinstall = (PACKAGING / "macos" / "scripts" / "postinstall").read_text()
    for key in ("Collector", "EnrollSecret"):
        assert key in settings and f"managed {key})" in postinstall
    rules = payloads["com.apple.servicemanagement"]["Rules"]
    assert (rules[0]["RuleType"], rules[0]["RuleValue"]) == ("Label", BUNDLE_ID)


@pytest.mark.system
def test_macos_scripts_pass_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("needs shellcheck")
    macos = PACKAGING / "macos"
    scripts = [macos / "build-pkg.sh", macos / "uninstall.sh", macos / "scripts" / "preinstall",
               macos / "scripts" / "postinstall"]
    done = subprocess.run(["shellcheck", "--shell=sh", *map(str, scripts)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout


def test_linux_agent_package_carries_the_wayland_pieces() -> None:
    """Checked on the sources (the package build itself is in test_package_linux)."""
    nfpm = (PACKAGING / "linux" / "nfpm-agent.yaml").read_text()
    extensions = PACKAGING / "linux" / "gnome-shell-extension"
    for uuid in ("focus@worklens.org", "focus-legacy@worklens.org"):
        for path in sorted((extensions / uuid).iterdir()):
            assert f"src: packaging/linux/gnome-shell-extension/{uuid}/{path.name}" in nfpm
            assert f"dst: /usr/share/gnome-shell/extensions/{uuid}/{path.name}" in nfpm
    dconf = (PACKAGING / "linux" / "agent" / "dconf-worklens-agent").read_text()
    assert ("[org/gnome/shell]\nenabled-extensions=['focus@worklens.org', "
            "'focus-legacy@worklens.org']") in dconf
    assert "dst: /etc/dconf/db/local.d/50-worklens-agent" in nfpm
    assert "dconf update" in (PACKAGING / "linux" / "agent" / "postinst").read_text()
    sway = (PACKAGING / "linux" / "agent" / "sway-worklens-agent.conf").read_text()
    assert "exec /usr/libexec/worklens/worklens-agent-session" in sway
    launcher = (PACKAGING / "linux" / "agent" / "worklens-agent-session").read_text()
    for name in ("WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"):
        assert name in launcher     # handed to the systemd user unit at login


def test_linux_bundle_carries_the_wayland_and_desktop_backends(recipe) -> None:
    agent = recipe.analysis_args("agent", "linux")
    hidden = set(agent["hiddenimports"])
    assert {"worklens.agent.sensors.window._wlroots", "worklens.agent.sensors.window._gnome",
            "worklens.agent.sensors.window._kde", "worklens.agent.sensors.idle._wayland",
            "worklens.agent.sensors.idle._gnome",
            "worklens.agent.sensors._wlproto.wlr_foreign_toplevel_management_unstable_v1",
            "pywayland.client", "_cffi_backend", "jeepney.io.threading"} <= hidden
    datas = {(Path(src).name, Path(dest).as_posix()) for src, dest in agent["datas"]}
    assert ("kwin_focus.js", "worklens/agent/sensors/window") in datas
    assert ("LICENSE.LGPL-2.1", "worklens/agent/sensors/_wlproto/xml") in datas
    for platform in ("win32", "darwin"):
        other = recipe.analysis_args("agent", platform)["hiddenimports"]
        assert not [m for m in other if "_wayland" in m or "_wlroots" in m or "_kde" in m]
