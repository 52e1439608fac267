"""`hotstandby check`: is this node ready to run? Its settings first, then each thing it depends on.

Like `keepalived -t` and `haproxy -c`, then further: nothing is started and nothing is written (the
database is read read-only, no lock is taken); then, concurrently and each within T, the peer (a signed
call to its arbiter, so that a wrong secret and a skewed clock are told apart, and a probe of its
monitor), each LAN probe target, the VIP's /whoami, the witness, the CTI command and the CTI manager.

One ``Check`` a line: ok, skip (not configured: nothing to try) or fail, with the reason and what to do.
"""

from __future__ import annotations

import asyncio
import email.utils
import fcntl
import os
import shlex
import shutil
import socket
import sqlite3
import ssl
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx

from hotstandby.peerauth import sign
from hotstandby.settings import (
    CLUSTER_FIELDS,
    ClusterSettings,
    NodeSettings,
    SettingsError,
    check_startable,
    cluster_from_env,
    node_from_env,
    split_host_port,
    validate_cluster,
)
from hotstandby.store import SCHEMA_VERSION, StoreError, open_readonly, read_settings
from hotstandby.tls import client_context
from hotstandby.witness import EtcdWitness, WitnessError
from services.arbiter.probes import tcp_connect

Status = Literal["ok", "fail", "skip"]
ENV_FILE = Path("/etc/hotstandby/env")
SKEW_NOTE_S = 1.0
CHECK_BUDGET_S = 3.0  # the node logs a skew beyond this; the peer refuses signatures beyond peerauth.WINDOW_S


@dataclass(frozen=True)
class Check:
    check: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def line(self) -> str:
        word = {"ok": "ok", "skip": "skip", "fail": "FAIL"}[self.status]
        return f"{word:<5} {self.check:<13} {self.detail}" + (f" -> {self.fix}" if self.fix else "")

    def as_json(self) -> dict[str, object]:
        return asdict(self) | {"ok": self.ok}


def ok(check: str, detail: str) -> Check:
    return Check(check, "ok", detail)


def fail(check: str, detail: str, fix: str) -> Check:
    return Check(check, "fail", detail, fix)


def skip(check: str, detail: str) -> Check:
    return Check(check, "skip", detail)


def load_env(env_file: Path | None, environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The node's environment as its unit gives it: the env file under the process environment (which wins)."""
    from cli.install import parse_env_file

    if env_file is None:
        return dict(environ), "the environment"
    try:
        values = parse_env_file(env_file.read_text())
    except OSError as exc:
        raise SettingsError([("--env-file", f"cannot read {env_file}: {exc.strerror}")]) from None
    return values | dict(environ), f"{env_file} and the environment"


# -- settings and the local environment ---------------------------------------------------------
@dataclass
class Found:
    """What the settings checks learned, for the dependency checks."""

    node: NodeSettings | None = None
    cluster: ClusterSettings | None = None
    running: bool = False  # a node holds this data directory's lock


def settings_checks(env: Mapping[str, str], source: str) -> tuple[list[Check], Found]:
    found = Found()
    out: list[Check] = []
    try:
        found.node = node = node_from_env(env)
    except SettingsError as exc:
        return [fail("settings", f"node settings ({source}): {exc}", "correct it; the node refuses to start "
                                                                      "(exit 2) with it")], found
    where = "the environment (bootstrap: no database yet)"
    try:
        stored = read_settings(node.db_path) if node.db_path.exists() else {}
        if stored:
            found.cluster = validate_cluster({k: v.value for k, v in stored.items() if k in CLUSTER_FIELDS})
            where = "the node's database"
        else:
            found.cluster = cluster_from_env(env)
    except (SettingsError, StoreError) as exc:
        out.append(fail("settings", f"cluster settings ({where}): {exc}",
                        "correct HS_* in the env file (bootstrap) or with `hotstandby config set`"))
    cluster = found.cluster
    if cluster is not None:
        me = node.local_address or cluster.address_of(node.node_id)
        out.append(ok("settings", f"{node.node_id} ({node.rank}) at {me}, peer {node.peer_id} at "
                                  f"{cluster.address_of(node.peer_id)}; I = {cluster.heartbeat_interval_s:g} s, "
                                  f"T = {cluster.heartbeat_timeout_s:g} s, N = {cluster.failures_to_switch} from "
                                  f"{where}; hot standby {'on' if cluster.enabled else 'OFF (standalone)'}"))
        try:
            check_startable(node, cluster)
            out.append(ok("secrets", "peer secret set" if cluster.enabled else "hot standby off: no secret needed"))
        except SettingsError as exc:
            out.append(fail("secrets", str(exc), "set HS_PEER_SECRET_FILE to a file holding the same random "
                                                 "secret on both nodes (make install generates one)"))
        if not node.admin_token:
            out.append(fail("secrets", "HS_ADMIN_TOKEN is not set: switch, config set, maintenance and the "
                                       "console's buttons are refused (401)",
                            "set HS_ADMIN_TOKEN_FILE (make install generates one)"))
    if node.tls:
        try:
            client_context(node.tls_ca_file, node.tls_cert_file, node.tls_key_file)
            out.append(ok("tls", f"certificate {node.tls_cert_file} and its key load"))
        except (OSError, ssl.SSLError) as exc:
            out.append(fail("tls", f"cannot load the TLS files: {exc}", "check HS_TLS_CERT_FILE, HS_TLS_KEY_FILE, "
                                                                          "HS_TLS_CA_FILE"))
    out.append(_data_dir(node, found))
    if cluster is not None:
        out.append(_ports(node, cluster, found))
    return out, found


def _data_dir(node: NodeSettings, found: Found) -> Check:
    d = node.data_dir
    if not d.exists():
        parent = next((p for p in d.parents if p.exists()), Path("/"))
        if os.access(parent, os.W_OK):
            return ok("data dir", f"{d} does not exist yet: the node creates it (systemd: StateDirectory=)")
        return fail("data dir", f"{d} does not exist and {parent} is not writable by uid {os.geteuid()}",
                    f"create {d}, owned by the node's user")
    found.running = _locked(d / "arbiter.lock")
    facts = [f"{d}"]
    db = node.db_path
    if db.exists():
        try:
            conn = open_readonly(db)
            try:
                quick = conn.execute("PRAGMA quick_check").fetchone()[0]
                version = int(conn.execute("PRAGMA user_version").fetchone()[0]) or 1
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return fail("data dir", f"database {db} cannot be read: {exc}", "move it away: the node rebuilds its "
                                                                             "settings from the peer")
        if quick != "ok":
            return fail("data dir", f"database {db} is corrupt ({quick})", "move it away: the node rebuilds its "
                                                                          "settings from the peer")
        if version > SCHEMA_VERSION:
            return fail("data dir", f"database {db} has schema {version}, newer than this release ({SCHEMA_VERSION})",
                        "run the release that wrote it")
        facts.append(f"database schema {version}" + (" (migrated on start, a copy kept)" if version < SCHEMA_VERSION
                                                     else "") + ", integrity ok")
    else:
        facts.append("no database yet")
    if not os.access(d, os.W_OK):
        return fail("data dir", f"{d} is not writable by uid {os.geteuid()}", "chown it to the node's user")
    facts.append("a node is running on it" if found.running else "no node running on it")
    return ok("data dir", ", ".join(facts))


def _locked(path: Path) -> bool:
    """Whether a node holds the data directory's lock (read only: the file is not created)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _ports(node: NodeSettings, cluster: ClusterSettings, found: Found) -> Check:
    ports = {"monitor": cluster.monitor_port, "arbiter": cluster.arbiter_port}
    if found.running:
        return ok("ports", f"monitor {ports['monitor']} and arbiter {ports['arbiter']} on {node.bind_host}: "
                           "held by the running node")
    busy = []
    for name, port in ports.items():
        with socket.socket(socket.AF_INET6 if ":" in node.bind_host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((node.bind_host, port))
            except OSError as exc:
                busy.append(f"{name} port {port}: {exc.strerror}")
    if busy:
        return fail("ports", f"cannot listen on {node.bind_host}: {'; '.join(busy)}",
                    "stop what uses it (ss -ltnp) or change monitor_port/arbiter_port on both nodes")
    return ok("ports", f"monitor {ports['monitor']} and arbiter {ports['arbiter']} free on {node.bind_host}")


# -- what the node depends on -------------------------------------------------------------------
async def dependency_checks(node: NodeSettings, cluster: ClusterSettings) -> list[Check]:
    # A reachability test, not a heartbeat: a budget of at least CHECK_BUDGET_S even when T is shorter (an
    # answer slower than T is still reported, with its time); the node's own probes hedge inside T.
    t = max(cluster.heartbeat_timeout_s, CHECK_BUDGET_S)
    verify: ssl.SSLContext | bool = (client_context(node.tls_ca_file, node.tls_cert_file, node.tls_key_file)
                                     if node.tls else False)
    async with httpx.AsyncClient(trust_env=False, verify=verify, headers={"user-agent": "hotstandby-check"}) as http:
        groups = await asyncio.gather(
            _peer(node, cluster, http, t), _peer_monitor(node, cluster, http, t), _lan(cluster, t),
            _vip(node, cluster, http, t), _witness(node, t), _cti_command(node), _cti_manager(node, http, t))
    return [c for group in groups for c in group]


def _url(node: NodeSettings, host: str, port: int) -> str:
    return f"{'https' if node.tls else 'http'}://{'[' + host + ']' if ':' in host else host}:{port}"


async def _peer(node: NodeSettings, cfg: ClusterSettings, http: httpx.AsyncClient, t: float) -> list[Check]:
    """A signed, read-only call (GET /peer/config with the peer's own digest is answered with nothing new)."""
    peer = node.peer_id
    base = _url(node, cfg.address_of(peer), cfg.arbiter_port)
    if not node.peer_secret:
        return [skip("peer", f"{peer} at {base}: no peer secret to sign with")]
    path = "/peer/config?digest=check"
    t1 = time.time()
    try:
        r = await http.get(base + path, headers=sign(node.peer_secret, "GET", path, b"", node=node.node_id),
                           timeout=t)
    except httpx.ConnectError as exc:
        return [fail("peer", f"{peer} at {base}: {_reason(exc)}", f"start hotstandby on {peer}, or check "
                                                                   "server1/2_address, arbiter_port, firewall")]
    except httpx.HTTPError as exc:
        return [fail("peer", f"{peer} at {base}: no answer within {t:g} s ({_reason(exc)})",
                     "check the network path and any firewall between the nodes")]
    t4 = time.time()
    rtt_ms = (t4 - t1) * 1000
    detail = _detail(r)
    if r.status_code == 401 and "bad signature" in detail:
        return [fail("peer", f"{peer} refused our signature: HS_PEER_SECRET differs between the nodes",
                     "copy the peer secret file from one node to the other and restart the one that changed")]
    if r.status_code == 401 and "stale timestamp" in detail:
        return [fail("peer", f"{peer} refused our signature for its time: {detail}: the clocks differ by more "
                             "than 15 minutes", "run NTP (chrony, systemd-timesyncd) on both nodes")]
    if r.status_code == 401:
        return [fail("peer", f"{peer} refused our call: {detail}", "check HS_NODE_ID on both nodes (one "
                                                                   "server1, one server2)")]
    if r.status_code != 200:
        return [fail("peer", f"{peer} at {base} answered HTTP {r.status_code}: {detail}",
                     f"is {base} a hotstandby arbiter of this release?")]
    skew = _skew(r, t1, t4)
    words = "" if skew is None else f", clock skew {round(skew) or 0:+d} s (±1 s)"  # never "-0"
    if skew is not None and abs(skew) > SKEW_NOTE_S:
        words += " (tolerated up to 15 min; NTP keeps the logs comparable)"
    slow = f" (slower than T = {cfg.heartbeat_timeout_s:g} s)" if rtt_ms > cfg.heartbeat_timeout_s * 1000 else ""
    return [ok("peer", f"{peer} at {base} answered a signed call in {rtt_ms:.0f} ms{slow}{words}")]


def _skew(r: httpx.Response, t1: float, t4: float) -> float | None:
    """The peer's clock minus ours, from its Date header (whole seconds) against the middle of the call."""
    try:
        sent = email.utils.parsedate_to_datetime(r.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
    return sent + 0.5 - (t1 + t4) / 2


async def _peer_monitor(node: NodeSettings, cfg: ClusterSettings, http: httpx.AsyncClient, t: float) -> list[Check]:
    mod = "IPSWS" if cfg.switch_on_application_error else "NONE"
    url = _url(node, cfg.address_of(node.peer_id), cfg.monitor_port) + f"/monitor?mod={mod}"
    try:
        r = await http.get(url, timeout=t)
    except httpx.HTTPError as exc:
        return [fail("peer monitor", f"{url}: {_reason(exc)}", f"start hotstandby on {node.peer_id}, or check "
                                                               "monitor_port and the firewall")]
    if r.status_code != 200:
        return [fail("peer monitor", f"{url}: HTTP {r.status_code} {r.text.strip()[:200]}",
                     f"see `hotstandby status` and the logs on {node.peer_id}")]
    return [ok("peer monitor", f"{url}: {r.text.strip()[:60]}")]


async def _lan(cfg: ClusterSettings, t: float) -> list[Check]:
    targets = cfg.lan_probes
    if not targets:
        return [skip("lan", "lan_probe_addresses is empty: the LAN check is off (R5 never fires)")]
    reasons = await asyncio.gather(*(tcp_connect(h, p, t) for h, p in targets))
    out = []
    for (host, port), why in zip(targets, reasons, strict=True):
        if why is None:
            out.append(ok("lan", f"{host}:{port} accepts TCP connections"))
        else:
            out.append(fail("lan", f"{host}:{port}: {why}", "fix the target or remove it from lan_probe_addresses "
                                                             "(hotstandby config set)"))
    if len(targets) > 1 and any(r is None for r in reasons) and any(r is not None for r in reasons):
        out.append(ok("lan", f"{sum(r is None for r in reasons)} of {len(targets)} targets answer: the node "
                             "counts its LAN as up while one does"))
    return out


async def _vip(node: NodeSettings, cfg: ClusterSettings, http: httpx.AsyncClient, t: float) -> list[Check]:
    if not cfg.vip_address:
        return [skip("vip", "vip_address is empty")]
    host, port = split_host_port(cfg.vip_address, default_port=cfg.monitor_port)
    url = _url(node, host, port) + "/whoami"
    try:
        r = await http.get(url, timeout=t, headers={"connection": "close"})
        who = r.json().get("node_id") if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return [fail("vip", f"{url}: {_reason(exc)}", "check the load balancer (hotstandby render haproxy) and "
                                                      "vip_address")]
    if who not in ("server1", "server2"):
        return [fail("vip", f"{url} answered HTTP {r.status_code} without a node_id",
                     "the VIP must route to the nodes' monitor port (its /whoami)")]
    return [ok("vip", f"{url} routes to {who}")]


async def _witness(node: NodeSettings, t: float) -> list[Check]:
    if not node.witness_url:
        return [skip("witness", "HS_WITNESS_URL is empty: no witness")]
    w = EtcdWitness(node.witness_url, cluster=node.cluster_name, node_id=node.node_id)
    try:
        holder = await w.read_key(max(t, 1.0))
    except WitnessError as exc:
        return [fail("witness", f"{w.url}: {exc}", "check HS_WITNESS_URL and that etcd serves its gRPC gateway "
                                                   "(http://host:2379)")]
    finally:
        await w.aclose()
    who = "nobody holds the key" if holder is None else f"the key names {holder.node_id} (epoch {holder.epoch})"
    return [ok("witness", f"{w.url} answers; {who} ({w.key})")]


async def _cti_command(node: NodeSettings) -> list[Check]:
    if not node.cti_command.strip():
        return [ok("cti command", "the bundled CTI simulator (HS_CTI_COMMAND is empty)")]
    try:
        argv = shlex.split(node.cti_command)
    except ValueError as exc:
        return [fail("cti command", f"HS_CTI_COMMAND cannot be split into words: {exc}", "fix its quoting")]
    program = argv[0]
    path = program if "/" in program else shutil.which(program)
    if path is None or not Path(path).exists():
        return [fail("cti command", f"{program}: not found", "install the CTI server, or correct HS_CTI_COMMAND "
                                                             "(an absolute path is safest)")]
    if Path(path).is_dir() or not os.access(path, os.X_OK):
        return [fail("cti command", f"{path}: not an executable file", f"chmod +x {path}, or correct HS_CTI_COMMAND")]
    return [ok("cti command", f"{path} exists and is executable")]


async def _cti_manager(node: NodeSettings, http: httpx.AsyncClient, t: float) -> list[Check]:
    url = node.cti_manager_url.strip()
    if not url:
        return [skip("cti manager", "HS_CTI_MANAGER_URL is empty")]
    parts = urlsplit(url)
    if not parts.hostname:
        return [fail("cti manager", f"{url}: not a URL", "HS_CTI_MANAGER_URL=http://host:port")]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    why = await tcp_connect(parts.hostname, port, t)
    if why is not None:
        return [fail("cti manager", f"{parts.hostname}:{port}: {why}", "check the CTI manager and the network to it")]
    return [ok("cti manager", f"{parts.hostname}:{port} accepts TCP connections")]


def _reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens there)"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or cause}"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def _detail(r: httpx.Response) -> str:
    try:
        data = r.json()
        return str(data.get("message") or data.get("detail") or r.text)
    except ValueError:
        return r.text.strip()[:200]


async def run_checks(env: Mapping[str, str], source: str) -> list[Check]:
    checks, found = settings_checks(env, source)
    if found.node is not None and found.cluster is not None:
        checks += await dependency_checks(found.node, found.cluster)
    return checks
