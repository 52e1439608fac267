"""One nemesis run end to end: build the lab, start the pair behind HAProxy, run the schedule while the
recorder watches, heal everything, and hand back the history (checked by the caller).

Hosts (lab.netns with ALL_HOSTS): server1 and server2 run ``hotstandby node`` with I = T = 1 s, N = 3 and
their data directories on 32 MB tmpfs (so a disk can be filled), each under a wall clock the nemesis can
step (libfaketime, lab.netns.stepped_clock); lb runs HAProxy (config rendered by hotstandby.haproxy) and
the TCP listener both nodes use as their LAN probe; etcd runs the witness (a witness run only); infra runs
the CTI manager simulator, which is never cut. The CTI simulator registers with 0 ports and 0 devices, so
a CTI server counts as running from the instant it starts.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from hotstandby.haproxy import check_timing
from hotstandby.settings import ClusterSettings
from lab import netns
from lab.bounds import Bounds
from lab.etcd import start_in_lab
from lab.labpair import LabPair
from lab.loadbalancer import start_haproxy, vip_url
from lab.nemesis.executor import Executor
from lab.nemesis.faults import NODES, Schedule
from lab.nemesis.history import History
from lab.nemesis.recorder import Recorder
from lab.nemesis.schedule import make_schedule
from lab.waiting import wait_until

INTERVAL, TIMEOUT, FAILURES = 1.0, 1.0, 3  # the demo's profile: T = 1 s rides out a loaded machine
DISK_SIZE = "32m"
START_S = 90.0


@dataclass(frozen=True)
class Plan:
    seed: int
    seconds: float
    witness: bool

    @property
    def name(self) -> str:
        return f"seed{self.seed}-{'witness' if self.witness else 'nowitness'}-{self.seconds:g}s"

    def replay(self) -> str:
        return (f".venv/bin/python -m lab.nemesis --seed {self.seed} --seconds {self.seconds:g} "
                f"--witness {'on' if self.witness else 'off'}")


def cluster() -> ClusterSettings:
    return ClusterSettings(heartbeat_interval_s=INTERVAL, heartbeat_timeout_s=TIMEOUT, failures_to_switch=FAILURES)


def run(plan: Plan, out: Path, log: bool = True) -> History:
    """Run ``plan`` in a fresh lab; the history, node outputs and logs go under ``out``."""
    why = netns.unavailable()
    if why:
        raise RuntimeError(why)
    netns.cleanup_stale()
    schedule = make_schedule(plan.seed, plan.seconds, witness=plan.witness)
    out.mkdir(parents=True, exist_ok=True)
    with netns.lab_run(netns.ALL_HOSTS) as lab:
        root = lab.base / plan.name
        try:
            return _run(lab, root, plan, schedule, out, log)
        finally:
            _keep_evidence(root, out)


def _say(log: bool, text: str) -> None:
    if log:
        print(text, file=sys.stderr, flush=True)


def _run(lab: netns.Lab, root: Path, plan: Plan, schedule: Schedule, out: Path, log: bool) -> History:
    root.mkdir(parents=True, exist_ok=True)
    clocks = {n: root / f"{n}.clock" for n in NODES}
    for node in NODES:
        lab.small_fs(root / node, DISK_SIZE)
    extra = {"HS_CTI_PORTS": "0", "HS_CTI_DEVICES": "0", "HS_LOG_LEVEL": "WARNING"}
    if plan.witness:
        extra["HS_WITNESS_URL"] = start_in_lab(lab, "etcd", root)
    pair = LabPair(lab, root, interval=INTERVAL, timeout=TIMEOUT, failures=FAILURES, extra=extra, lan_host="lb")
    for node in NODES:
        pair.nodes[node].env |= netns.stepped_clock(clocks[node])
    try:
        pair.start_infra()
        start_haproxy(lab, "lb", root, cluster())
        pair.start(wait=False)
        for node in NODES:  # a node takes seconds to start on a loaded machine
            wait_until(lambda node=node: pair.serving(node), START_S, f"{node} serving")  # type: ignore[misc]
        _, active = pair.wait_one_active(pair.bound_r1 + pair.bound_r4 + 30)
        wait_until(lambda: pair.holders() == [active], 15, f"CTI only on {active}")
        lease = None
        if plan.witness:
            lease = wait_until(lambda: pair.status(active)["witness"]["lease_ttl_s"], 15, "the witness lease")
        bounds = Bounds(INTERVAL, TIMEOUT, FAILURES, plan.witness, lease,
                        check_timing(cluster()).worst_follow_ms() / 1000)
        url = vip_url(lab, "lb")
        wait_until(lambda: pair.http.get(url, timeout=1).json()["node_id"] == active, 15,
                   f"the VIP routing to {active}")
        rec = Recorder(pair, url, time.time())
        for node in NODES:
            rec.note(node, "start", "initial")
        rec.start()
        _say(log, f"nemesis {plan.name}: {len(schedule.faults)} faults in {len(schedule.storms)} storms; "
                  f"bounds R1 {bounds.r1:g} s, R4 {bounds.r4:g} s, margin {bounds.margin:g} s; replay: {plan.replay()}")
        ex = Executor(lab, pair, rec, clocks)
        ex.run(schedule)
        ex.wait()
        last_heal = _heal_all(lab, pair, ex, clocks)
        remaining = plan.seconds - rec.now()
        if remaining > 0:
            time.sleep(remaining)
        final = _final_config(pair)
        rec.stop()
        end = rec.now()
        for node in NODES:
            if pair.nodes[node].alive():
                rec.note(node, "exit", "final")
        return History(
            seed=plan.seed, seconds=plan.seconds, witness=plan.witness, bounds=bounds, schedule=schedule, t0=rec.t0,
            end=end, last_heal=last_heal, replay=plan.replay(), applied=ex.applied, samples=rec.samples,
            registrations=rec.registrations, vip=rec.vip_answers(), writes=ex.writes, life=rec.life,
            final_config=final, manager=rec.manager,
        )
    finally:
        for node in NODES:
            lab.signal_host(node, signal.SIGCONT)
        pair.close()


def _heal_all(lab: netns.Lab, pair: LabPair, ex: Executor, clocks: dict[str, Path]) -> float:
    """Undo whatever is left (a fault cut short by the end of the run, a failed heal), start every node, and
    return when the last node serves again."""
    lab.heal()
    for node in NODES:
        lab.signal_host(node, signal.SIGCONT)
        netns.step_clock(clocks[node], 0.0)
        (pair.nodes[node].data_dir / "filler.bin").unlink(missing_ok=True)
    for node in NODES:
        with contextlib.suppress(httpx.HTTPError):
            if pair.status(node)["local"]["maintenance"]:
                pair.admin("POST", node, "/maintenance", {"enabled": False}, timeout=5)
                break
    ex.held = dict.fromkeys(NODES, 0)
    ex.reconcile()
    for node in NODES:
        wait_until(lambda node=node: pair.serving(node), START_S, f"{node} serving after the final heal")  # type: ignore[misc]
    return ex.now()


def _final_config(pair: LabPair) -> dict[str, tuple[str, str, str]]:
    def read() -> dict[str, tuple[str, str, str]]:
        out = {}
        for node in NODES:
            st = pair.http.get(pair.arbiter_url(node) + "/config", timeout=2).json()["settings"]["vip_address"]
            out[node] = (st["value"], st["updated_at"], st["origin"])
        return out

    with contextlib.suppress(AssertionError):
        wait_until(lambda: len({v for v, _, _ in read().values()}) == 1, 10, "both nodes on one config", interval=0.2)
    return read()


def _keep_evidence(root: Path, out: Path) -> None:
    """Node outputs, fault-tolerant logs, HAProxy's and etcd's output: everything but the databases."""
    logs = out / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    with contextlib.suppress(OSError):
        shutil.copytree(root, logs, ignore=shutil.ignore_patterns("*.db*", "filler.bin", "etcd-data", "*.clock*"),
                        dirs_exist_ok=True)
