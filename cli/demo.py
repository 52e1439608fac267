"""``hotstandby demo`` (``make run``): a whole pair, the CTI manager and HAProxy on this machine.

server1 on 127.0.0.11, server2 on 127.0.0.12, the CTI manager simulator on 127.0.0.13:2748,
HAProxy with the VIP on 127.0.0.10:8080 (stats on :8404, runtime API on :9999, which the arbiters call
at each role change: HS_LB_RUNTIME_API), fast profile I = 1 s, T = 1 s, N = 3.
Every child runs in its own session, so Ctrl-C reaches only the demo, which then stops them in
order (HAProxy, the nodes with their graceful handover, the manager) and leaves nothing behind.
``kill -HUP <demo pid>`` restarts any node you killed, to watch the failback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from hotstandby.haproxy import write_config
from hotstandby.settings import ClusterSettings

NODES = {"server1": "127.0.0.11", "server2": "127.0.0.12"}
MANAGER = "127.0.0.13:2748"
VIP = "127.0.0.10:8080"
STATS_PORT = 8404
RUNTIME_API = "127.0.0.10:9999"
PROFILE = {"HS_HEARTBEAT_INTERVAL_S": "1", "HS_HEARTBEAT_TIMEOUT_S": "1", "HS_FAILURES_TO_SWITCH": "3"}
TOKEN = "demo-admin-token"
PASSED = ("HS_NOTIFY_COMMAND", "HS_NOTIFY_TIMEOUT_S")  # node-local settings the operator may try on the demo
PY = [sys.executable, "-m", "cli"]


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restart_wanted = False
        self.stopping = False

    def env(self, node_id: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("HS_") or k in PASSED}
        return base | self.settings(node_id)

    def settings(self, node_id: str) -> dict[str, str]:
        """The node's HS_* settings: what its env file would hold (written beside it for `hotstandby check`)."""
        return PROFILE | {k: v for k, v in os.environ.items() if k in PASSED} | {
            "HS_NODE_ID": node_id, "HS_BIND_HOST": NODES[node_id], "HS_DATA_DIR": str(self.dir / node_id),
            "HS_SERVER1_ADDRESS": NODES["server1"], "HS_SERVER2_ADDRESS": NODES["server2"],
            "HS_VIP_ADDRESS": VIP, "HS_PEER_SECRET": "demo-peer-secret", "HS_ADMIN_TOKEN": TOKEN,
            "HS_CTI_MANAGER_URL": f"http://{MANAGER}", "HS_LB_RUNTIME_API": RUNTIME_API,
        }

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        out = open(self.dir / f"{name}.out", "ab")  # noqa: SIM115 - the child keeps it open
        self.procs[name] = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        out.close()

    def start_node(self, node_id: str) -> None:
        self.spawn(node_id, [*PY, "node"], self.env(node_id))

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spawn("cti-manager", [*PY, "cti-manager", "--bind", MANAGER])
        _wait(f"http://{MANAGER}/healthz", "the CTI manager simulator")
        # HAProxy before the nodes: their first word to its runtime API finds it listening.
        cluster = ClusterSettings(server1_address=NODES["server1"], server2_address=NODES["server2"],
                                  vip_address=VIP, heartbeat_interval_s=1, heartbeat_timeout_s=1, failures_to_switch=3)
        cfg = write_config(self.dir, cluster, vip=VIP, stats_port=STATS_PORT, runtime_api=RUNTIME_API)
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            raise SystemExit("hotstandby demo: haproxy is not installed (make run installs it)")
        self.spawn("haproxy", [haproxy, "-f", str(cfg), "-db"])
        for node_id in NODES:
            env_file = self.dir / f"{node_id}.env"
            env_file.touch(mode=0o600)
            env_file.write_text("".join(f"{k}={v}\n" for k, v in self.settings(node_id).items()))
            self.start_node(node_id)
        for node_id, host in NODES.items():
            _wait(f"http://{host}:8080/healthz", node_id)

    def stop(self) -> None:
        self.stopping = True
        order = ["haproxy", "server1", "server2", "cti-manager"]
        for name in order:
            proc = self.procs.get(name)
            if proc and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 8
        for name in order:
            proc = self.procs.get(name)
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def restart_dead(self) -> None:
        for node_id in NODES:
            if self.procs[node_id].poll() is not None:
                print(f"{_now()}  restarting {node_id}", flush=True)
                self.start_node(node_id)


def _now() -> str:
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"


def _wait(url: str, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"hotstandby demo: {what} did not start (see {url})")


def _snapshot(client: httpx.Client) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for node_id, host in NODES.items():
        try:
            view[node_id] = client.get(f"http://{host}:2011/status", timeout=0.5).json()["local"]["role"]
        except (httpx.HTTPError, ValueError, KeyError):
            view[node_id] = "down"
    try:
        view["vip"] = client.get(f"http://{VIP}/whoami", timeout=0.5, headers={"connection": "close"}).json()["node_id"]
    except (httpx.HTTPError, ValueError, KeyError):
        view["vip"] = "none"
    try:
        view["cti"] = ",".join(sorted(h["node_id"] for h in client.get(f"http://{MANAGER}/state", timeout=0.5)
                                      .json()["holders"])) or "none"
    except (httpx.HTTPError, ValueError, KeyError):
        view["cti"] = "?"
    return view


def _banner(demo: Demo) -> str:
    pids = {n: demo.procs[n].pid for n in NODES}
    return f"""
hotstandby demo pair (I = 1 s, T = 1 s, N = 3: expected failover delay 5.3 s)
  console     http://127.0.0.11:2011/   http://127.0.0.12:2011/      (admin token: {TOKEN})
  status      HS_URL=http://127.0.0.11:2011 .venv/bin/hotstandby status
  VIP         curl http://{VIP}/whoami          HAProxy stats: http://127.0.0.10:{STATS_PORT}/
  CTI manager curl http://{MANAGER}/state
  logs        {demo.dir}/server1/logs/   {demo.dir}/server2/logs/   (JSON: {demo.dir}/*.out)
  check       .venv/bin/hotstandby check --env-file {demo.dir}/server1.env
  explain     HS_URL=http://127.0.0.12:2011 .venv/bin/hotstandby explain --peer-dead
  history     HS_URL=http://127.0.0.11:2011 .venv/bin/hotstandby history
  metrics     http://127.0.0.11:2011/metrics   http://127.0.0.11:8080/metrics
  try         kill -9 {pids['server1']}   (server1's node process; server2 takes over)
              kill -HUP {os.getpid()}   (restart any node you killed; server1 takes ACTIVE back)
              HS_URL=http://127.0.0.11:2011 HS_ADMIN_TOKEN={TOKEN} .venv/bin/hotstandby switch server2
Ctrl-C stops everything. Changes as they happen:"""


def run_demo(workdir: str) -> int:
    demo = Demo(Path(workdir).resolve())

    def on_signal(sig: int, _frame: Any) -> None:
        if sig == signal.SIGHUP:
            demo.restart_wanted = True
        else:
            demo.stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        demo.start()
        print(_banner(demo), flush=True)
        last: dict[str, Any] = {}
        with httpx.Client(trust_env=False) as client:
            while not demo.stopping:
                if demo.restart_wanted:
                    demo.restart_wanted = False
                    demo.restart_dead()
                view = _snapshot(client)
                if view != last:
                    print(f"{_now()}  server1 {view['server1']:<8} server2 {view['server2']:<8} "
                          f"VIP -> {view['vip']:<8} CTI on {view['cti']}", flush=True)
                    last = view
                time.sleep(0.25)
    finally:
        print("stopping the demo ...", flush=True)
        demo.stop()
    return 0
