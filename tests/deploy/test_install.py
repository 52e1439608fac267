"""The README's deployment as one command, into a throwaway root: user, unit, env file, secrets, checked by
systemd-analyze (verify, and security below 3). `make install` itself (the venv) is the slow test at the end."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cli.install import ENV_TEMPLATE, Installer, parse_env_file, render_unit
from hotstandby.hlc import Timestamp
from hotstandby.replication import Stamped
from hotstandby.sdnotify import watchdog_seconds
from hotstandby.settings import cluster_from_env
from hotstandby.store import Store
from lab.watch import HOTSTANDBY
from tests.needs import need

ROOT = Path(__file__).resolve().parents[2]
EXPOSURE = re.compile(r"Overall exposure level for hotstandby\.service: ([\d.]+)")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install-unit creates a user and owns files to it: root")


def debian_root(tmp_path: Path) -> Path:
    """A throwaway root with what a Debian system has where the install looks: systemd's units (verify
    resolves the unit's dependencies among them) and an /etc."""
    need("systemd-analyze", "systemd")
    need("systemd-sysusers", "systemd")
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc").mkdir()
    return root


def venv_stub(root: Path) -> Path:
    """What `make install` leaves at ROOT/opt/hotstandby before install-unit runs: a console script whose
    #! line names the venv where it was built (pip writes it so). The real venv is the slow test below."""
    script = root / "opt/hotstandby/bin/hotstandby"
    script.parent.mkdir(parents=True)
    script.write_text(f"#!{root}/opt/hotstandby/bin/python\nfrom cli.main import main\nmain()\n")
    script.chmod(0o755)
    return script


def install_unit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOTSTANDBY, "install-unit", "--root", str(root), *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args, f"--root={root}", "hotstandby.service"], capture_output=True,
                          text=True, timeout=120)


def assert_installed(root: Path, node_id: str) -> None:
    """User, env file, secrets, unit: as the README's deployment needs them, and systemd-analyze agrees."""
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    user = passwd["hotstandby"]
    uid, home, shell = int(user[2]), user[5], user[6]
    assert (home, shell) == ("/var/lib/hotstandby", "/usr/sbin/nologin")
    assert 0 < uid < 1000, "a system user"
    env_file = root / "etc/hotstandby/env"
    assert (env_file.stat().st_mode & 0o777, env_file.stat().st_uid) == (0o600, 0)
    env = parse_env_file(env_file.read_text())
    assert env["HS_NODE_ID"] == node_id
    assert env["HS_DATA_DIR"] == "/var/lib/hotstandby"
    for name in ("HS_PEER_SECRET_FILE", "HS_ADMIN_TOKEN_FILE"):
        secret = root / env[name].lstrip("/")
        st = secret.stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, uid), name
        assert len(secret.read_text().strip()) >= 40, "a generated secret, not a placeholder"
    unit = (root / "etc/systemd/system/hotstandby.service").read_text()
    assert "Type=notify" in unit and f"WatchdogSec={watchdog_seconds(1)}" in unit
    verify = analyze(root, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # --threshold counts in tenths of the shown level: 29 is "below 3".
    security = analyze(root, "security", "--offline=yes", "--threshold=29")
    assert security.returncode == 0, security.stdout[-3000:] + security.stderr
    m = EXPOSURE.search(security.stdout)
    assert m and float(m.group(1)) < 3, security.stdout[-500:]


def test_install_unit_into_a_throwaway_root(tmp_path: Path) -> None:
    """One command makes the user, the unit (verified, exposure below 3), the env file and 0600 secrets owned by
    the user, relocates the venv's scripts and links the command; then it says what to do next."""
    root = debian_root(tmp_path)
    script = venv_stub(root)
    r = install_unit(root, "--set", "HS_NODE_ID=server2", "--set", "HS_SERVER1_ADDRESS=10.0.0.11")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_installed(root, "server2")
    assert script.read_text().startswith("#!/opt/hotstandby/bin/python\n"), "the venv names its final place"
    assert os.readlink(root / "usr/local/bin/hotstandby") == "/opt/hotstandby/bin/hotstandby"
    assert "Next" in r.stdout and "hotstandby check" in r.stdout and "systemctl enable --now hotstandby" in r.stdout
    assert "HS_SERVER1_ADDRESS=10.0.0.11" in (root / "etc/hotstandby/env").read_text()


def test_install_unit_again_keeps_what_exists(tmp_path: Path) -> None:
    """A second run keeps the secrets and the operator's env file (unless --set edits a line of it)."""
    root = debian_root(tmp_path)
    venv_stub(root)
    Installer(root).run()
    env_file, secret = root / "etc/hotstandby/env", root / "etc/hotstandby/peer-secret"
    env_file.write_text(env_file.read_text() + "# the operator's own note\n")
    before = secret.read_text(), env_file.read_text()
    again = Installer(root).run()
    assert before == (secret.read_text(), env_file.read_text())
    assert ("kept", "/etc/hotstandby/peer-secret") in again
    assert ("kept", "/etc/hotstandby/env") in again
    Installer(root, changes={"HS_LOCAL_ADDRESS": "10.0.0.12", "HS_WITNESS_URL": "http://10.0.0.21:2379"}).run()
    env = parse_env_file(env_file.read_text())
    assert (env["HS_LOCAL_ADDRESS"], env["HS_WITNESS_URL"]) == ("10.0.0.12", "http://10.0.0.21:2379")
    assert "# the operator's own note" in env_file.read_text()


def test_watchdog_follows_the_interval_the_node_holds(tmp_path: Path) -> None:
    """The unit's WatchdogSec comes from I in the node's database when it has one (not the env's bootstrap)."""
    root = debian_root(tmp_path)
    venv_stub(root)
    Installer(root).run()
    store = Store(root / "var/lib/hotstandby" / "hotstandby.db")
    store.save_settings({"heartbeat_interval_s": Stamped(30.0, Timestamp(1, 0), "server1")})
    store.close()
    done = dict(Installer(root).run())
    assert f"WatchdogSec={watchdog_seconds(30)}\n" in (root / "etc/systemd/system/hotstandby.service").read_text()
    assert "from I = 30 s in the node's database" in done["updated"]


def test_a_setting_install_does_not_know_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """--set with a name that is not a setting: exit 2, the name in one line, no file written."""
    root = debian_root(tmp_path)
    r = install_unit(root, "--set", "HS_NODEID=server1")
    assert r.returncode == 2
    assert "HS_NODEID" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (root / "etc/hotstandby").exists()


def test_the_shipped_unit_and_env_example_are_what_install_writes() -> None:
    """deploy/systemd/ holds the unit rendered for env.example's I, and env.example is a valid bootstrap."""
    example = parse_env_file((ROOT / "deploy/systemd/env.example").read_text())
    cluster = cluster_from_env(example)
    assert (ROOT / "deploy/systemd/hotstandby.service").read_text() == render_unit(cluster.heartbeat_interval_s)
    template = parse_env_file(ENV_TEMPLATE)
    assert set(example) <= set(template) | {"HS_VIP_ADDRESS"}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_make_install_into_a_throwaway_root(tmp_path: Path) -> None:
    """`make install DESTDIR=...`: a real venv at /opt/hotstandby with the command working, and everything the
    fast tests check. Slow (pip installs the dependencies): `make install-check` runs it."""
    root = debian_root(tmp_path)
    r = subprocess.run(["make", "install", f"DESTDIR={root}", "INSTALL_ARGS=--set HS_NODE_ID=server1",
                        f"PYTHON={shutil.which('python3') or sys.executable}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=1100)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert_installed(root, "server1")
    venv = root / "opt/hotstandby"
    assert (venv / "bin/hotstandby").read_text().startswith("#!/opt/hotstandby/bin/python")
    # The venv's own python runs the installed command (not this checkout: run from elsewhere).
    out = subprocess.run([str(venv / "bin/python"), "-c", "import cli.main, hotstandby, services; "
                          "print(hotstandby.__file__)"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert str(venv) in out.stdout
    with sqlite3.connect(":memory:"):  # nothing of the node runs at install time: no database was made
        assert not (root / "var/lib/hotstandby/hotstandby.db").exists()


def test_the_readme_drop_in_for_the_address_hook_verifies(tmp_path: Path) -> None:
    """The drop-in the README gives the `ip addr` hook (capabilities, netlink) is a valid unit fragment."""
    from tests.services.test_hook_examples import readme_block

    root = debian_root(tmp_path)
    venv_stub(root)
    Installer(root).run()
    plain = EXPOSURE.search(analyze(root, "security", "--offline=yes").stdout)
    drop_in = root / "etc/systemd/system/hotstandby.service.d/address.conf"
    drop_in.parent.mkdir()
    drop_in.write_text(readme_block("address drop-in"))
    verify = analyze(root, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    widened = EXPOSURE.search(analyze(root, "security", "--offline=yes").stdout)
    assert plain and widened and float(widened.group(1)) > float(plain.group(1)), "the drop-in was read"
