"""Our pair in the fault lab, behind HAProxy, and the measures the bench takes on it.

``BenchPair`` reuses the lab's ``LabPair`` (two ``hotstandby node`` processes, the CTI manager
simulator and a LAN probe target on the infra host) and adds two HAProxies on the infra host, their
configs written by ``hotstandby.haproxy.write_config`` from the same settings (both hold requests while
no node is UP), side by side in front of the same nodes:

- ``checks`` (VIP port 80): the health checks alone move the VIP (no ``HS_LB_RUNTIME_API``);
- ``api`` (VIP port 81, runtime API on 9999): the arbiters tell it of each role change
  (``HS_LB_RUNTIME_API``), the checks stay its safety net. Started after the resources are measured, so
  the idle figures see one load balancer's checks, as a deployment does.

A client through each VIP sees the same kill, so the two modes are compared on the very same runs. The
CTI simulator runs with 0 ports and 0 devices, so "CTI registered" is the registration itself.

Every time is on the wall clock shared by the bench and the nodes: the kill is stamped just before
``kill -9``, the promotion is the survivor's ``role_since``, CTI registration the manager's holder
``since``, the VIP switch the arrival of the first answer from the survivor through a VIP. Each kill
comes at a random phase: after the pair is steady, a wait drawn uniformly over one interval.
"""

from __future__ import annotations

import contextlib
import random
import re
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.resources import idle_cpu
from hotstandby.haproxy import check_timing, write_config
from hotstandby.settings import ClusterSettings
from lab.labpair import PEER, LabPair
from lab.netns import Lab, wait_port
from lab.vipclient import VipClient
from lab.waiting import wait_until

VIP_PORT, STATS_PORT = 80, 8404
# The load balancers in front of every pair: (VIP port, stats port, runtime API port or None).
LBS = {"checks": (80, 8404, None), "api": (81, 8405, 9999)}
SETTLE_S = 0.2  # after the pair is steady, before the random phase of a kill begins
STAMP = r"^(\d{4}/\d\d/\d\d_\d\d:\d\d:\d\d:\d{3})"
FAIL_RE = re.compile(STAMP + r" Arbiter : Check \w+ server : failure detected, count = (\d+)")
SWITCH_RE = re.compile(STAMP + r" Arbiter : SWITCH THIS SERVER TO (PRIMARY|BACKUP)")
CTI_RE = re.compile(STAMP + r" CTI : CTI server (started|activated|ready)")


def ftlog_time(stamp: str) -> float:
    """A fault-tolerant log stamp (node local time, ms) as epoch seconds."""
    return datetime.strptime(stamp[:19], "%Y/%m/%d_%H:%M:%S").timestamp() + int(stamp[20:]) / 1000


def iso_time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@dataclass(frozen=True)
class Profile:
    name: str
    interval: float
    timeout: float
    failures: int

    @property
    def cluster(self) -> ClusterSettings:
        return ClusterSettings(heartbeat_interval_s=self.interval, heartbeat_timeout_s=self.timeout,
                               failures_to_switch=self.failures)

    def label(self) -> str:
        return f"{self.name} (I={self.interval:g}, T={self.timeout:g}, N={self.failures})"


PROFILES = {
    "fast": Profile("fast", 1.0, 1.0, 3),
    "aggressive": Profile("aggressive", 0.2, 0.2, 3),
    "sprint": Profile("sprint", 0.1, 0.1, 3),
}
VENDOR = Profile("vendor", 30.0, 10.0, 5)


@dataclass
class DeathRun:
    """One kill -9 of the ACTIVE node, timed from outside (wall clock, seconds since the kill)."""

    victim: str
    survivor: str
    killed: float
    first_failure: float | None = None
    last_probe: float | None = None
    active: float | None = None
    cti: float | None = None
    vip: float | None = None  # through the `checks` load balancer
    vip_api: float | None = None  # through the `api` load balancer (told by the arbiters)
    cti_spawned: float | None = None  # the survivor's log: CTI child started (cold) or activated (warm)
    cti_ready: float | None = None
    phase_s: float = 0.0  # the random wait before the kill (uniform over one interval)

    def rel(self, t: float | None) -> float | None:
        return None if t is None else t - self.killed

    def as_dict(self) -> dict[str, Any]:
        return {"victim": self.victim, "survivor": self.survivor, "phase_s": round(self.phase_s, 4),
                "first_failure_s": self.rel(self.first_failure), "last_probe_s": self.rel(self.last_probe),
                "active_s": self.rel(self.active), "cti_s": self.rel(self.cti), "vip_s": self.rel(self.vip),
                "vip_api_s": self.rel(self.vip_api),
                "cti_spawned_s": self.rel(self.cti_spawned), "cti_ready_s": self.rel(self.cti_ready)}


@dataclass
class BenchPair:
    lab: Lab
    root: Path
    profile: Profile
    extra: dict[str, str] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    runtime_api: bool = True  # the nodes tell the `api` load balancer (HS_LB_RUNTIME_API); False: no runtime API

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        api = {"HS_LB_RUNTIME_API": f"{self.lab.addr('infra')}:{LBS['api'][2]}"} if self.runtime_api else {}
        env = {"HS_CTI_PORTS": "0", "HS_CTI_DEVICES": "0", "HS_AUTO_FAILBACK": "false",
               "HS_LOG_LEVEL": "WARNING"} | api | self.extra
        self.pair = LabPair(self.lab, self.root, interval=self.profile.interval, timeout=self.profile.timeout,
                            failures=self.profile.failures, extra=env)
        self.http = httpx.Client(trust_env=False, timeout=1.0)
        self.active = "server1"
        self.lbs: list[str] = []  # the load balancers started, of LBS

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def vip_url(self) -> str:
        return self.url_of("checks")

    def url_of(self, lb: str) -> str:
        return f"http://{self.lab.addr('infra')}:{LBS[lb][0]}/whoami"

    @property
    def settle_s(self) -> float:
        """How long a wait for a steady pair may take at this profile: a failover, a dual ACTIVE repaired,
        the load balancer's follow, and a loaded machine's slack (the vendor default needs minutes)."""
        follow = check_timing(self.profile.cluster).worst_follow_ms() / 1000
        return self.pair.bound_r1 + self.pair.bound_r4 + follow + 30

    def haproxy_config(self, lb: str = "checks") -> Path:
        vip_port, stats_port, api_port = LBS[lb]
        cluster = self.profile.cluster.model_copy(update={
            "server1_address": self.lab.addr("server1"), "server2_address": self.lab.addr("server2")})
        infra = self.lab.addr("infra")
        d = self.root / f"lb-{lb}"
        d.mkdir(parents=True, exist_ok=True)
        # runtime_api only when asked: a product before it (--variants checks) renders without it.
        api = {"runtime_api": f"{infra}:{api_port}"} if api_port else {}
        return write_config(d, cluster, vip=f"{infra}:{vip_port}", stats_port=stats_port, **api)

    def haproxy_timing(self) -> dict[str, int]:
        return check_timing(self.profile.cluster)._asdict()

    def start_lb(self, lb: str) -> None:
        cfg = self.haproxy_config(lb)
        self.lab.spawn("infra", ["haproxy", "-f", str(cfg), "-db"], log=cfg.parent / "haproxy.out")
        wait_port(self.lab.addr("infra"), LBS[lb][0], 15)
        self.lbs.append(lb)

    def start(self, haproxy: bool = True) -> None:
        self.pair.start_infra()
        if haproxy:
            self.start_lb("checks")
        self.pair.start()
        # Either node may end ACTIVE (a loaded machine can delay server1's first ticks); the bench does not care.
        _, self.active = self.pair.wait_one_active(self.settle_s)
        self.steady()

    def close(self) -> None:
        self.pair.close()
        self.http.close()

    # -- observation -------------------------------------------------------------------------
    def status(self, node: str) -> dict[str, Any]:
        return self.http.get(self.pair.arbiter_url(node) + "/status", timeout=0.5).json()

    def holders(self) -> list[dict[str, Any]]:
        return self.http.get(self.pair.manager_url + "/state", timeout=0.5).json()["holders"]

    def failures_after(self, node: str, after: float) -> list[tuple[float, int]]:
        out = []
        for line in self.pair.nodes[node].ftlog().splitlines():
            m = FAIL_RE.match(line)
            if m and (t := ftlog_time(m.group(1))) >= after - 0.002:
                out.append((t, int(m.group(2))))
        return out

    def promotions(self, node: str) -> int:
        return sum(1 for ln in self.pair.nodes[node].ftlog().splitlines()
                   if (m := SWITCH_RE.match(ln)) and m.group(2) == "PRIMARY")

    def steady(self, *vips: VipClient, timeout: float | None = None) -> None:
        """Wait for one node ACTIVE with CTI (it becomes ``self.active``), its peer STANDBY, both seen
        healthy, and (with clients running) every VIP routing to the ACTIVE. Whichever node is ACTIVE
        will do: a pair just started on a loaded machine may change its mind once, when a slow first
        answer counted as a failure. The wait follows the profile (``settle_s``) unless told."""
        timeout = self.settle_s if timeout is None else timeout

        def ok() -> bool:
            local = {n: self.status(n)["local"] for n in PEER}
            self.active = next((n for n, v in local.items() if v["role"] == "ACTIVE"), self.active)
            a = self.active
            sa, ss = local[a], local[PEER[a]]
            return (sa["role"] == "ACTIVE" and ss["role"] == "STANDBY"
                    and sa["consecutive_successes"] >= 1 and ss["consecutive_successes"] >= 1
                    and [h["node_id"] for h in self.holders()] == [a])

        wait_until(ok, timeout, "one node ACTIVE with CTI, the other STANDBY", interval=0.05)
        for vip in vips:
            wait_until(lambda v=vip: v.routes_to(self.active), timeout,  # type: ignore[misc]
                       f"VIP {vip.url} routing to {self.active}", interval=0.05)

    def clients(self, stack: contextlib.ExitStack, period: float, concurrent: bool = False) -> dict[str, VipClient]:
        """A client through each load balancer started, entered on ``stack``: closed loop with a 1 s timeout
        (a request that waits longer failed), or open loop waiting out HAProxy's hold (see lab.vipclient)."""
        timeout = 15.0 if concurrent else 1.0
        return {lb: stack.enter_context(VipClient(self.url_of(lb), period=period, timeout=timeout,
                                                  concurrent=concurrent)) for lb in self.lbs}

    # -- the measures ------------------------------------------------------------------------
    def death_run(self, deadline: float = 30) -> DeathRun:
        """kill -9 of the ACTIVE node at a random phase; the survivor's promotion, CTI registration and the
        VIP switch through each load balancer."""
        victim, survivor = self.active, PEER[self.active]
        with contextlib.ExitStack() as stack:
            vips = self.clients(stack, period=0.02, concurrent=True)  # open loop, as for keepalived's VIP
            self.steady(*vips.values())
            phase = self.rng.uniform(0, self.profile.interval)
            time.sleep(SETTLE_S + phase)
            run = DeathRun(victim, survivor, killed=time.time(), phase_s=phase)
            self.pair.nodes[victim].kill()
            end = time.monotonic() + self.pair.bound_r1 + deadline

            def promoted() -> bool:
                st = self.status(survivor)["local"]
                if st["role"] == "ACTIVE":
                    run.active = iso_time(st["role_since"])
                    return True
                return False

            wait_until(promoted, end - time.monotonic(), f"{survivor} ACTIVE", interval=0.01)

            def registered() -> bool:
                for h in self.holders():
                    if h["node_id"] == survivor and h["since"] >= run.killed:
                        run.cti = float(h["since"])
                        return True
                return False

            wait_until(registered, max(1.0, end - time.monotonic()), f"CTI registered by {survivor}", interval=0.01)
            if "checks" in vips:
                run.vip = vips["checks"].wait_first_from(survivor, run.killed, max(1.0, end - time.monotonic()))
            if "api" in vips:
                run.vip_api = vips["api"].wait_first_from(survivor, run.killed, max(1.0, end - time.monotonic()))
        for line in self.pair.nodes[survivor].ftlog().splitlines():
            m = CTI_RE.match(line)
            if m and (t := ftlog_time(m.group(1))) >= run.killed:
                if m.group(2) in ("started", "activated") and run.cti_spawned is None:
                    run.cti_spawned = t
                elif m.group(2) == "ready" and run.cti_ready is None:
                    run.cti_ready = t
        fails = self.failures_after(survivor, run.killed)
        if fails:
            run.first_failure = fails[0][0]
            run.last_probe = max(t for t, c in fails if c <= self.profile.failures)
        self.active = survivor
        return run

    def restart(self, node: str) -> None:
        """Start a killed node again and wait until the pair is steady with ``self.active`` ACTIVE."""
        self.pair.nodes[node].start()
        wait_until(lambda: self.pair.serving(node), self.settle_s, f"{node} serving")
        self.steady()

    def switchover(self, rate: float = 50, switches: int = 3, settle: float = 1.0) -> dict[str, Any]:
        """Planned switchovers (R7) with a client at ``rate`` requests a second through each load balancer:
        per load balancer, the failed requests, the longest gap between two answers and how soon the VIP
        followed (None: no data, never 0)."""
        runs: list[dict[str, Any]] = []
        with contextlib.ExitStack() as stack:
            vips = self.clients(stack, period=1 / rate)
            for _ in range(switches):
                self.steady(*vips.values())
                target = PEER[self.active]
                time.sleep(settle)
                start = time.time()
                token = self.pair.nodes[target].env["HS_ADMIN_TOKEN"]
                for _ in range(3):  # R7 refuses (409) when this tick's check of the target failed: ask again
                    r = self.http.post(self.pair.arbiter_url(self.active) + "/switch", json={"target": target},
                                       headers={"authorization": f"Bearer {token}"}, timeout=30)
                    if r.status_code != 409:
                        break
                    time.sleep(self.profile.interval)
                answered = time.time()
                if r.status_code != 200:
                    raise RuntimeError(f"switch to {target} refused: {r.status_code} {r.text[:200]}")
                self.active = target
                moved = {lb: v.wait_first_from(target, start, 10) for lb, v in vips.items()}
                time.sleep(settle)
                end = time.time()
                runs.append({"target": target, "answered_s": answered - start, "by_lb": {
                    lb: {"vip_s": None if moved[lb] is None else moved[lb] - start,  # type: ignore[operator]
                         "failed_requests": v.failures(start - settle, end),
                         "max_gap_s": v.max_gap(start - settle, end),
                         "requests": v.requests(start - settle, end)} for lb, v in vips.items()}})
        return {lb: switch_summary([r["by_lb"][lb] for r in runs], rate) for lb in self.lbs} | {"runs": runs}

    def false_switches(self, loss: float, seconds: float) -> dict[str, Any]:
        """Random loss on the peer link for ``seconds``: promotions of either node (nobody died, so each one
        is a false switch), and every role change."""
        settled = True
        try:
            _, self.active = self.pair.wait_one_active(60)
        except AssertionError:  # still flapping from the last window: count this one anyway, and say so
            settled = False
        before = {n: self.promotions(n) for n in PEER}
        changes_before = {n: self.pair.role_changes(n) for n in PEER}
        self.lab.loss("server1", "server2", loss)
        try:
            time.sleep(seconds)
        finally:
            self.lab.heal()
        takeovers = sum(self.promotions(n) - before[n] for n in PEER)
        changes = sum(self.pair.role_changes(n) - changes_before[n] for n in PEER)
        # Let the pair settle again (R4 repairs a dual ACTIVE) before the next window.
        time.sleep(self.pair.bound_r4)
        roles = {n: self.pair.role(n) for n in PEER}
        self.active = next((n for n, r in roles.items() if r == "ACTIVE"), self.active)
        return {"takeovers": takeovers, "role_changes": changes, "seconds": seconds, "settled_before": settled}

    # -- resources ---------------------------------------------------------------------------
    def resources(self, idle_s: float, repeats: int = 1) -> dict[str, Any]:
        """CPU of each node over ``repeats`` windows of ``idle_s`` seconds of steady state, and its memory
        (bench/resources.py)."""
        self.steady()
        r = idle_cpu(self.lab, lambda n: self.pair.nodes[n].pid, idle_s, repeats)
        r["roles"] = {self.active: "ACTIVE", PEER[self.active]: "STANDBY"}
        r["profile"] = self.profile.label()
        return r


def switch_summary(runs: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Several switchovers seen through one load balancer, added up; a figure without data stays None."""
    gaps = [r["max_gap_s"] for r in runs if r["max_gap_s"] is not None]
    moved = sorted(r["vip_s"] for r in runs if r["vip_s"] is not None)
    return {"failed_requests": sum(r["failed_requests"] for r in runs), "requests": sum(r["requests"] for r in runs),
            "max_gap_s": max(gaps) if len(gaps) == len(runs) and gaps else None,
            "median_vip_s": statistics.median(moved) if moved else None, "switches": len(runs), "rate_per_s": rate}


class PeerLinkCounter:
    """Bytes between server1 and server2, counted by iptables rules in server1's namespace."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        peer = lab.addr("server2")
        lab.sh("server1", "iptables", "-w", "-N", "HSBENCH")
        lab.sh("server1", "iptables", "-w", "-A", "HSBENCH", "-s", peer, "-j", "RETURN")
        lab.sh("server1", "iptables", "-w", "-A", "HSBENCH", "-d", peer, "-j", "RETURN")
        lab.sh("server1", "iptables", "-w", "-I", "INPUT", "1", "-s", peer, "-j", "HSBENCH")
        lab.sh("server1", "iptables", "-w", "-I", "OUTPUT", "1", "-d", peer, "-j", "HSBENCH")

    def read(self) -> tuple[int, int]:
        """(bytes, packets) so far, both directions."""
        out = self.lab.sh("server1", "iptables", "-w", "-L", "HSBENCH", "-v", "-x", "-n").stdout
        b = p = 0
        for line in out.splitlines()[2:]:
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit():
                p += int(parts[0])
                b += int(parts[1])
        return b, p


def heartbeat_bytes(bp: BenchPair, window_s: float) -> dict[str, Any]:
    """Bytes on the peer link over ``window_s`` of steady state, scaled to an hour."""
    bp.steady(timeout=bp.pair.bound_r1 + 60)
    counter = PeerLinkCounter(bp.lab)
    t0 = time.monotonic()
    b0, p0 = counter.read()
    time.sleep(window_s)
    b1, p1 = counter.read()
    took = time.monotonic() - t0
    return {"bytes": b1 - b0, "packets": p1 - p0, "window_s": round(took, 1),
            "bytes_per_hour": round((b1 - b0) * 3600 / took), "profile": bp.profile.label()}
