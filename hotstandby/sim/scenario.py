"""What one simulated run is made of: the cluster settings and the fault schedule, drawn from a seed.

The schedule is plain data (a tuple of ``Fault``) so a failing run can be shrunk by dropping faults
and replayed from ``(seed, kept fault indices)``. Randomness inside the run (message loss, delays,
jitter) comes from a second stream derived from the same seed, so dropping a fault does not reshuffle
every other draw more than it must.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hotstandby.settings import ClusterSettings

#: Fault kinds. Those with a duration hold until ``start + duration``; the others are instants.
LINK_KINDS = ("partition", "oneway", "loss", "slow")
NODE_KINDS = ("crash", "freeze", "lan", "sigterm", "disk")
INSTANT_KINDS = ("cti_death", "skew", "clock_back", "switch")
OTHER_KINDS = ("vip", "maintenance")
#: With a witness: a partition of the three (any combination of the peer link and each node's link to the
#: witness), one node cut from it (both ways, requests only, answers only), the witness down, and one
#: node's lease renewals stalling (they reach etcd after T).
WITNESS_KINDS = ("split", "wcut", "wdown", "wstall")
KINDS = LINK_KINDS + NODE_KINDS + INSTANT_KINDS + OTHER_KINDS + WITNESS_KINDS
_WEIGHTS = {
    "partition": 6, "oneway": 4, "loss": 5, "slow": 4, "crash": 8, "freeze": 4, "lan": 4, "sigterm": 4,
    "disk": 2, "cti_death": 4, "skew": 2, "clock_back": 2, "switch": 5, "vip": 3, "maintenance": 3,
    "split": 8, "wcut": 5, "wdown": 3, "wstall": 3,
}

PROFILES = ("random", "fast", "vendor")


@dataclass(frozen=True)
class Fault:
    """One fault (or operator action) of the schedule.

    ``node`` is 0 (server1) or 1 (server2): the node it hits, the link direction it cuts (from that
    node), or the node an operator request lands on. ``value`` is kind-specific: loss probability,
    storage kept (1) or lost (0), switch target index and force, VIP preference, clock step, which
    links a split cuts, which way a witness cut goes.
    """

    start: float
    kind: str
    node: int
    duration: float = 0.0
    value: float = 0.0
    both: bool = False  # link faults: both directions
    force: bool = False  # switch: --force

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class Scenario:
    seed: int
    settings: ClusterSettings
    faults: tuple[Fault, ...]
    horizon: float  # simulated seconds
    quiet_from: float  # no fault is active from here on: liveness is judged in [quiet_from, horizon]
    lan_checked: bool  # lan_probe_addresses configured
    vip_pref: int | None  # where the load balancer prefers to route at start (None: the VIP never answers)
    run_seed: int  # the stream for in-run randomness
    witness: bool = False  # an etcd witness (SPEC 12) is configured

    @property
    def interval(self) -> float:
        return self.settings.heartbeat_interval_s

    def keep(self, indices: tuple[int, ...]) -> Scenario:
        """The same run with only the faults at ``indices`` (for shrinking)."""
        return Scenario(self.seed, self.settings, tuple(self.faults[i] for i in indices), self.horizon,
                        self.quiet_from, self.lan_checked, self.vip_pref, self.run_seed, self.witness)


def cti_startup_s(ports: int = 2, devices: int = 2, connect_s: float = 0.1) -> float:
    """SPEC 4: CTI startup = connect time + 0.2 s per port + 0.2 s per device."""
    return connect_s + 0.2 * ports + 0.2 * devices


def lease_s(cfg: ClusterSettings) -> float:
    """L as etcd grants it (whole seconds, at least its 2 s minimum), plus its expiry sweep's 0.5 s."""
    return max(2, math.ceil(cfg.failures_to_switch * cfg.heartbeat_interval_s - 1e-9)) + 0.5


def settle_s(cfg: ClusterSettings, witness: bool = False) -> float:
    """How long after the last fault the pair must have exactly one ACTIVE with CTI registered.

    The worst path is a healed dual ACTIVE (R4: 2N·I + I) or a fresh failover (R1: N·I + T + I),
    followed by a CTI startup; a tick of slack covers jitter. With a witness a promotion may also wait
    for a lease of the last disturbance to expire (L + 0.5 s).
    """
    n, i, t = cfg.failures_to_switch, cfg.heartbeat_interval_s, cfg.heartbeat_timeout_s
    return 2 * n * i + t + 3 * i + cti_startup_s() + (lease_s(cfg) + i + t if witness else 0.0)


def make_settings(rng: random.Random, profile: str) -> tuple[ClusterSettings, bool]:
    """Cluster settings through the real validated model; returns them and whether LAN probes are on."""
    if profile == "fast":  # SPEC 10's demo profile
        return ClusterSettings(heartbeat_interval_s=1.0, heartbeat_timeout_s=1.0, failures_to_switch=3), False
    if profile == "vendor":  # the vendor's defaults
        return ClusterSettings(), False
    interval = rng.choice((0.05, 0.2, 1.0, 2.0, 5.0, 30.0))
    lan = rng.random() < 0.5
    cfg = ClusterSettings(
        heartbeat_interval_s=interval,
        heartbeat_timeout_s=max(0.05, round(interval * rng.uniform(0.2, 1.0), 3)),
        failures_to_switch=rng.choice((1, 2, 3, 3, 5, 5, 10)),
        auto_failback=rng.random() < 0.7,
        test_vip_destination=rng.random() < 0.25,
        vip_address="127.0.0.10:8080",
        lan_probe_addresses="10.0.0.1:53" if lan else "",
    )
    return cfg, lan


def make_scenario(seed: int, steps: int, profile: str = "random", witness: bool = False) -> Scenario:
    """Draw settings and a fault schedule from ``seed`` for a run of about ``steps`` ticks (both nodes)."""
    rng = random.Random(seed)
    cfg, lan = make_settings(rng, profile)
    if witness and cfg.failures_to_switch < 3:
        # R12's margin L − I must cover a decision up to T late while renewals stall: N >= 3 (README, Witness;
        # at N = 2 the 100,000-seed run saw leases expire under an ACTIVE, at N = 1 and I >= 2 s L − I is 0).
        cfg = cfg.model_copy(update={"failures_to_switch": 3})
    i = cfg.heartbeat_interval_s
    n = cfg.failures_to_switch
    quiet = settle_s(cfg, witness) + 2 * i
    horizon = max(steps / 2 * i, quiet + 4 * i)
    active_until = horizon - quiet
    kinds = [k for k in KINDS if (k != "lan" or lan or cfg.test_vip_destination)
             and (witness or k not in WITNESS_KINDS)]
    if not cfg.test_vip_destination:
        kinds.remove("vip")
    weights = [_WEIGHTS[k] for k in kinds]
    count = rng.randint(0, max(1, int(active_until / (i * (n + 4)))))
    faults: list[Fault] = []
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        start = round(rng.uniform(0.0, active_until), 6)
        node = rng.randint(0, 1)
        longest = min(active_until - start, (3 * n + 4) * i)
        duration = round(rng.uniform(0.3 * i, max(0.3 * i, longest)), 6) if kind not in INSTANT_KINDS else 0.0
        duration = min(duration, active_until - start)
        value = 0.0
        both = force = False
        if kind == "loss":
            value = rng.choice((0.1, 0.3, 0.6, 0.9))
            both = rng.random() < 0.5
        elif kind == "slow":
            both = rng.random() < 0.5
        elif kind == "partition":
            both = True
        elif kind in ("crash", "sigterm"):
            value = 1.0 if rng.random() < 0.8 else 0.0  # storage kept / lost
        elif kind == "skew":
            value = rng.uniform(-120.0, 120.0)
        elif kind == "clock_back":
            value = -rng.uniform(1.0, 3600.0)
        elif kind == "switch":
            value = float(rng.randint(0, 1))  # target
            force = rng.random() < 0.3
        elif kind == "vip":
            value = float(rng.choice((0, 1, -1)))  # -1: the VIP answers nothing
        elif kind == "split":
            value = float(rng.randint(1, 7))  # bit 1: the peer link, 2: server1's witness link, 4: server2's
        elif kind == "wcut":
            value = float(rng.randint(0, 2))  # 0: both ways, 1: requests lost, 2: answers lost
        faults.append(Fault(start, kind, node, duration, value, both, force))
    faults.sort(key=lambda f: (f.start, f.kind, f.node))
    vip_pref = 0 if cfg.test_vip_destination else None
    return Scenario(seed, cfg, tuple(faults), horizon, active_until, lan, vip_pref, rng.getrandbits(63), witness)
