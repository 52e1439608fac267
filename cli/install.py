"""`hotstandby install-unit`: what the README's deployment needs around the installed command.

Into a root directory (``/``, or a throwaway one for packaging and tests), with the venv already at
``PREFIX`` (``make install`` creates it, then runs this):

- the system user ``hotstandby`` (a sysusers.d entry, applied by ``systemd-sysusers --root``);
- the systemd unit, rendered from this node's settings (``WatchdogSec`` from I);
- ``/etc/hotstandby/env``, written once from a template (an existing one is kept; ``--set`` edits it);
- the peer secret and the admin token, generated once: files of mode 0600 owned by the user;
- ``/usr/local/bin/hotstandby``, a link to the venv's command;
- a venv built under a root other than ``/`` relocated to ``PREFIX`` (its scripts' ``#!`` lines), as
  dh-virtualenv does, so the tree can be copied or packaged as it is.

Nothing that exists is overwritten except the unit (ours, re-rendered) and the link.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from hotstandby.sdnotify import watchdog_seconds
from hotstandby.settings import CLUSTER_FIELDS, NODE_FIELDS, ClusterSettings, env_name
from hotstandby.store import read_settings

USER = "hotstandby"
PREFIX = "/opt/hotstandby"
ETC = "/etc/hotstandby"
ENV_FILE = f"{ETC}/env"
UNIT_PATH = "/etc/systemd/system/hotstandby.service"
SYSUSERS_PATH = "/usr/lib/sysusers.d/hotstandby.conf"
LINK_PATH = "/usr/local/bin/hotstandby"
DATA_DIR = "/var/lib/hotstandby"
SECRETS = {"HS_PEER_SECRET_FILE": f"{ETC}/peer-secret", "HS_ADMIN_TOKEN_FILE": f"{ETC}/admin-token"}
KNOWN_ENV = frozenset({env_name(f) for f in (*CLUSTER_FIELDS, *NODE_FIELDS)}
                      | {env_name(f) + "_FILE" for f in (*CLUSTER_FIELDS, *NODE_FIELDS)})

ENV_TEMPLATE = f"""\
# {ENV_FILE}: this node's settings, read by hotstandby.service (EnvironmentFile=) and by `hotstandby check`.
# Cluster settings (addresses, I, T, N, LAN probes ...) only bootstrap a node whose database holds none yet;
# afterwards change them with `hotstandby config set KEY=VALUE` (replicated to the peer at once).
HS_NODE_ID=server1
HS_SERVER1_ADDRESS=
HS_SERVER2_ADDRESS=
HS_LOCAL_ADDRESS=
HS_BIND_HOST=0.0.0.0
HS_DATA_DIR={DATA_DIR}
# The same peer secret on both nodes; the admin token is what `hotstandby switch|config set` send.
HS_PEER_SECRET_FILE={SECRETS["HS_PEER_SECRET_FILE"]}
HS_ADMIN_TOKEN_FILE={SECRETS["HS_ADMIN_TOKEN_FILE"]}
# TCP targets that prove this node is on the LAN (the gateway, the load balancer): never the peer.
HS_LAN_PROBE_ADDRESSES=
# The CTI server this node runs while ACTIVE (empty: the bundled simulator).
HS_CTI_COMMAND=
HS_CTI_MANAGER_URL=
HS_HEARTBEAT_INTERVAL_S=1
HS_HEARTBEAT_TIMEOUT_S=1
HS_FAILURES_TO_SWITCH=3
#HS_VIP_ADDRESS=10.0.0.10:80
#HS_WITNESS_URL=http://10.0.0.21:2379,http://10.0.0.22:2379,http://10.0.0.23:2379
#HS_NOTIFY_COMMAND=/etc/hotstandby/notify
"""


class InstallError(Exception):
    """A step that cannot be done: one line for the operator."""


def render_unit(interval_s: float, *, prefix: str = PREFIX, env_file: str = ENV_FILE) -> str:
    """The unit for a node whose heartbeat interval is ``interval_s``."""
    template = resources.files("cli").joinpath("hotstandby.service.tmpl").read_text()
    return template.format(interval=f"{interval_s:g}", watchdog=watchdog_seconds(interval_s), prefix=prefix,
                           env_file=env_file)


def parse_env_file(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile= syntax, as far as an env file of ours uses it: KEY=VALUE lines,
    comments, blank lines, optional quotes around the value."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def _set_lines(text: str, changes: dict[str, str]) -> str:
    """``text`` with each KEY's line set to ``changes[KEY]`` (uncommented when it was a comment), new
    keys appended; every other line kept as it was."""
    lines, done = text.splitlines(), set()
    for i, raw in enumerate(lines):
        m = re.match(r"^\s*#?\s*(HS_[A-Z0-9_]+)=", raw)
        if m and m.group(1) in changes and m.group(1) not in done:
            lines[i] = f"{m.group(1)}={changes[m.group(1)]}"
            done.add(m.group(1))
    lines += [f"{k}={v}" for k, v in changes.items() if k not in done]
    return "\n".join(lines) + "\n"


@dataclass
class Installer:
    root: Path
    prefix: str = PREFIX
    changes: dict[str, str] = field(default_factory=dict)
    done: list[tuple[str, str]] = field(default_factory=list)

    def at(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def note(self, what: str, text: str) -> None:
        self.done.append((what, text))

    def run(self) -> list[tuple[str, str]]:
        unknown = sorted(set(self.changes) - KNOWN_ENV)
        if unknown:
            raise InstallError(f"--set {unknown[0]}: not a hotstandby setting (HS_... names, SPEC section 2)")
        uid, gid = self.user()
        self.relocate()
        env = self.env_file()
        self.secrets(env, uid, gid)
        self.unit(env)
        self.link()
        return self.done

    # -- the steps ---------------------------------------------------------------------------
    def user(self) -> tuple[int, int]:
        conf = self.at(SYSUSERS_PATH)
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f'u {USER} - "hotstandby node" {DATA_DIR} /usr/sbin/nologin\n')
        existed = self._passwd_entry() is not None
        self.at("/etc").mkdir(parents=True, exist_ok=True)  # where sysusers keeps its lock and files
        tool = shutil.which("systemd-sysusers")
        if tool is None:
            raise InstallError("systemd-sysusers not found (apt-get install systemd): it creates the user")
        r = subprocess.run([tool, f"--root={self.root}", conf.name], capture_output=True, text=True, timeout=60)
        entry = self._passwd_entry()
        if r.returncode != 0 or entry is None:
            raise InstallError(f"systemd-sysusers could not create the user {USER}: {r.stderr.strip()}")
        self.note("kept" if existed else "created", f"system user {USER} (uid {entry[0]}, {SYSUSERS_PATH})")
        return entry

    def _passwd_entry(self) -> tuple[int, int] | None:
        try:
            lines = self.at("/etc/passwd").read_text().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            parts = line.split(":")
            if parts[0] == USER and len(parts) > 3:
                return int(parts[2]), int(parts[3])
        return None

    def relocate(self) -> None:
        """A venv built at ROOT/PREFIX names ROOT/PREFIX in its scripts: make them name PREFIX."""
        if self.root.resolve() == Path("/"):
            return
        venv = self.at(self.prefix)
        built = str(venv)
        fixed = 0
        for script in sorted((venv / "bin").glob("*")) if (venv / "bin").is_dir() else []:
            if script.is_symlink() or not script.is_file():
                continue
            data = script.read_bytes()
            if built.encode() in data[:4096] and (data.startswith(b"#!") or script.name.startswith("activate")):
                script.write_bytes(data.replace(built.encode(), self.prefix.encode()))
                fixed += 1
        if fixed:
            self.note("relocated", f"{fixed} scripts of the venv to name {self.prefix}")

    def env_file(self) -> dict[str, str]:
        path = self.at(ENV_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)
        if path.exists():
            text = path.read_text()
            if self.changes:
                text = _set_lines(text, self.changes)
                path.write_text(text)
                self.note("updated", f"{ENV_FILE} ({', '.join(sorted(self.changes))})")
            else:
                self.note("kept", f"{ENV_FILE}")
        else:
            text = _set_lines(ENV_TEMPLATE, self.changes) if self.changes else ENV_TEMPLATE
            path.write_text(text)
            self.note("wrote", f"{ENV_FILE} (fill it in)")
        os.chmod(path, 0o600)  # systemd reads it as root; it may name secrets
        os.chown(path, 0, 0)
        return parse_env_file(text)

    def secrets(self, env: dict[str, str], uid: int, gid: int) -> None:
        for name, default in SECRETS.items():
            where = env.get(name) or default
            path = self.at(where)
            if path.exists():
                self.note("kept", f"{where}")
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(32) + "\n")
                self.note("generated", f"{where} (0600, owner {USER})")
            os.chown(path, uid, gid)
            os.chmod(path, 0o600)

    def interval(self, env: dict[str, str]) -> tuple[float, str]:
        """I in effect: the node's database when it holds the settings, else the env file's bootstrap."""
        data_dir = env.get("HS_DATA_DIR") or DATA_DIR
        db = self.at(data_dir) / "hotstandby.db"
        stored = read_settings(db) if db.exists() else {}
        if "heartbeat_interval_s" in stored:
            return float(stored["heartbeat_interval_s"].value), f"the node's database ({db.name})"
        raw = env.get("HS_HEARTBEAT_INTERVAL_S", "").strip()
        try:
            return float(raw) if raw else ClusterSettings().heartbeat_interval_s, f"{ENV_FILE}"
        except ValueError:
            raise InstallError(f"HS_HEARTBEAT_INTERVAL_S: {raw!r} is not a number ({ENV_FILE})") from None

    def unit(self, env: dict[str, str]) -> None:
        interval, source = self.interval(env)
        path = self.at(UNIT_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = render_unit(interval, prefix=self.prefix)
        before = path.read_text() if path.exists() else None
        path.write_text(text)
        os.chmod(path, 0o644)
        word = "kept" if before == text else "updated" if before else "wrote"
        self.note(word, f"{UNIT_PATH} (Type=notify, WatchdogSec={watchdog_seconds(interval)} s from I = "
                        f"{interval:g} s in {source})")

    def link(self) -> None:
        target = f"{self.prefix}/bin/hotstandby"
        if not self.at(target).exists():
            self.note("skipped", f"{LINK_PATH}: no {target} yet (make install creates the venv)")
            return
        link = self.at(LINK_PATH)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
        self.note("linked", f"{LINK_PATH} -> {target}")


def next_steps(root: Path) -> str:
    where = "" if root.resolve() == Path("/") else f" (in {root}, once it is the system's root)"
    return f"""\
Next{where}:
  1. edit {ENV_FILE}: HS_NODE_ID, HS_SERVER1_ADDRESS, HS_SERVER2_ADDRESS, HS_LOCAL_ADDRESS,
     HS_LAN_PROBE_ADDRESSES, HS_CTI_COMMAND (and the same cluster values on both nodes)
  2. one peer secret for the pair: copy {SECRETS["HS_PEER_SECRET_FILE"]} from this node to the other
     (same path; there: chown {USER}: {SECRETS["HS_PEER_SECRET_FILE"]} && chmod 600 it)
  3. hotstandby check                 every setting and dependency, one line each: fix what it says
  4. systemctl daemon-reload && systemctl enable --now hotstandby
  5. hotstandby status                (switch, config set, maintenance need
                                      HS_ADMIN_TOKEN=$(cat {SECRETS["HS_ADMIN_TOKEN_FILE"]}))
After a change of I: hotstandby install-unit again (the running node already follows it itself)."""
