"""What the nemesis can do to the pair, as plain values: a fault's kind, when, to whom, for how long.

A fault with a duration starts and later heals (a killed or stopped node is started again, a cut
link is joined, a clock is stepped back, a disk freed, maintenance switched off); one without is a
single act (a CTI crash, a switch, a config write). The hosts a partition can cut are the two
nodes, the load balancer (which is also the nodes' LAN probe target) and, in a witness run, etcd.
The CTI manager (the ground truth) and the observer are never cut.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

NODES = ("server1", "server2")
PEER = {"server1": "server2", "server2": "server1"}


def hosts(witness: bool) -> tuple[str, ...]:
    """The hosts partitions are made of: etcd only when the pair uses it."""
    return (*NODES, "lb", "etcd") if witness else (*NODES, "lb")


class Kind(StrEnum):
    KILL = "kill"  # kill -9 of a node's process (its CTI dies with it); started again at the end
    FREEZE = "freeze"  # SIGSTOP of every process on a node's host; SIGCONT at the end
    TERM = "sigterm"  # SIGTERM, the graceful stop (R10); started again at the end
    PARTITION = "partition"  # links cut both ways (a split in two, or any set of links)
    ONEWAY = "oneway"  # links cut in one direction only
    LOSS = "loss"  # random loss on one link, each direction independently
    CLOCK = "clock"  # a node's wall clock stepped by ``offset``; stepped back to true time at the end
    DISK = "disk"  # a node's data disk filled to the last byte; freed at the end
    CTI_CRASH = "cti-crash"  # kill -9 of the CTI server (the watchdog restarts it, R9)
    SWITCH = "switch"  # the operator: POST /switch {target}
    FORCE = "force-switch"  # the operator: POST /switch {target, force: true}
    MAINTENANCE = "maintenance"  # the operator: maintenance on, off at the end
    CONFIG = "config"  # the operator: PUT /config on one node (a new vip_address each time)


POINT_KINDS = frozenset({Kind.CTI_CRASH, Kind.SWITCH, Kind.FORCE, Kind.CONFIG})
OPERATOR_KINDS = frozenset({Kind.SWITCH, Kind.FORCE, Kind.MAINTENANCE, Kind.CONFIG, Kind.TERM})
NETWORK_KINDS = frozenset({Kind.PARTITION, Kind.ONEWAY, Kind.LOSS})
Edge = tuple[str, str]


@dataclass(frozen=True)
class Fault:
    """One planned fault. ``node``: the node acted on, or asked (operator moves), or "active" (whichever
    node is ACTIVE when it happens). ``target``: a switch's target, or "standby". ``edges``: directed
    (src, dst) links dropped (a loss fault holds one link, both directions)."""

    id: int
    kind: Kind
    at: float
    duration: float = 0.0
    node: str | None = None
    target: str | None = None
    edges: tuple[Edge, ...] = ()
    loss: float = 0.0
    offset: float = 0.0

    @property
    def end(self) -> float:
        return self.at + self.duration

    def describe(self) -> str:
        """One line: what, to whom (the words a violation report and the chart use)."""
        k = self.kind
        if k in NETWORK_KINDS:
            if k is Kind.LOSS:
                a, b = self.edges[0]
                return f"loss {self.loss:.0%} {a}<->{b}"
            arrow = "<->" if k is Kind.PARTITION else "->"
            links = ", ".join(f"{a}{arrow}{b}" for a, b in self.edges)
            return f"{'cut' if k is Kind.PARTITION else 'one-way cut'} {links}"
        if k is Kind.CLOCK:
            return f"clock {self.offset:+.1f} s on {self.node}"
        if k in (Kind.SWITCH, Kind.FORCE):
            return f"{k.value} to {self.target} (asked {self.node})"
        return f"{k.value} {self.node}"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["edges"] = [list(e) for e in self.edges]
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Fault:
        return Fault(**(d | {"kind": Kind(d["kind"]), "edges": tuple(tuple(e) for e in d.get("edges", ()))}))


@dataclass(frozen=True)
class Schedule:
    """A run's faults in start order, and the storms they come in (each followed by a quiet period)."""

    seed: int
    seconds: float
    witness: bool
    faults: tuple[Fault, ...]
    storms: tuple[tuple[float, float], ...] = field(default=())  # (first start, last planned heal)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "seconds": self.seconds, "witness": self.witness,
                "faults": [f.as_dict() for f in self.faults], "storms": [list(s) for s in self.storms]}
