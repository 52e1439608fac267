"""A run's history: what the nemesis did and what the recorder saw, all on one clock.

Every time is in seconds from the run's start (the observer's wall clock minus ``t0``; the CTI
manager shares that clock: no fault ever steps the clocks of the infra host or the observer). The
history is plain data and round-trips through JSON, so the checker can judge a saved run again and
its unit tests can build one by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from lab.bounds import Bounds
from lab.nemesis.faults import Fault, Schedule


class Sample(NamedTuple):
    """One poll of a node's GET /status (``role`` None: no answer before the poll's timeout)."""

    sent: float
    recv: float
    role: str | None = None
    epoch: int | None = None
    cause: str | None = None
    maintenance: bool | None = None
    vip: str | None = None  # the cluster setting vip_address, the one the operator keeps writing
    holder: str | None = None  # the witness key's holder as this node last read it
    cti: str | None = None  # the node's CTI state (stopped, starting, running, failed)
    failures: int | None = None  # its consecutive failed probes of its peer (R2: no valid answer within T)


class Registration(NamedTuple):
    """One entry of the CTI manager's journal: register, unregister or lapse."""

    t: float
    kind: str
    node: str
    epoch: int
    stale: bool = False


class VipAnswer(NamedTuple):
    """One request through HAProxy: the node that answered /whoami, or None (error, 503, timeout)."""

    sent: float
    done: float
    node: str | None


class Life(NamedTuple):
    """A node process started, or exited (``detail``: its exit status)."""

    t: float
    node: str
    event: str  # "start" | "exit"
    detail: str = ""


@dataclass
class Applied:
    """What the executor did with one fault: when its start and its heal began and were done."""

    fault: Fault
    node: str | None = None  # the node it hit ("active" resolved)
    target: str | None = None  # a switch's target ("standby" resolved)
    start: tuple[float, float] | None = None  # (began, done); None: skipped
    heal: tuple[float, float] | None = None
    result: str = ""  # "ok", "skipped: why", an HTTP status and reason
    status: int | None = None  # an operator move's HTTP status
    answered: float | None = None  # when its answer arrived
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"fault": self.fault.as_dict()}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Applied:
        return Applied(**(d | {"fault": Fault.from_dict(d["fault"]),
                               "start": tuple(d["start"]) if d.get("start") else None,
                               "heal": tuple(d["heal"]) if d.get("heal") else None}))


@dataclass
class Write:
    """One PUT /config of vip_address: ``stamp`` is (updated_at, origin) from an acknowledged answer."""

    seq: int
    node: str
    value: str
    sent: float
    done: float | None = None
    status: int | None = None
    stamp: tuple[str, str] | None = None
    replicated: bool | None = None

    @property
    def acked(self) -> bool:
        return self.status == 200


@dataclass
class History:
    seed: int
    seconds: float
    witness: bool
    bounds: Bounds
    schedule: Schedule
    t0: float = 0.0  # the observer's wall clock at the run's start
    end: float = 0.0  # when recording stopped
    last_heal: float = 0.0  # when the final heal (every fault undone, every node started) was done
    replay: str = ""
    applied: list[Applied] = field(default_factory=list)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    registrations: list[Registration] = field(default_factory=list)
    vip: list[VipAnswer] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    life: list[Life] = field(default_factory=list)
    final_config: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # node: (value, updated_at, origin)
    manager: dict[str, Any] = field(default_factory=dict)  # the CTI manager's last GET /state

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "seconds": self.seconds, "witness": self.witness, "bounds": self.bounds.as_dict(),
            "schedule": self.schedule.as_dict(), "t0": self.t0, "end": self.end, "last_heal": self.last_heal,
            "replay": self.replay, "applied": [a.as_dict() for a in self.applied],
            "samples": {n: [list(s) for s in v] for n, v in self.samples.items()},
            "registrations": [list(r) for r in self.registrations], "vip": [list(v) for v in self.vip],
            "writes": [asdict(w) for w in self.writes], "life": [list(x) for x in self.life],
            "final_config": {n: list(v) for n, v in self.final_config.items()}, "manager": self.manager,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> History:
        b = d["bounds"]
        bounds = Bounds(b["interval"], b["timeout"], b["failures"], b["witness"], b["lease_ttl"], b["lb_follow"])
        sched = d["schedule"]
        schedule = Schedule(sched["seed"], sched["seconds"], sched["witness"],
                            tuple(Fault.from_dict(f) for f in sched["faults"]),
                            tuple((s[0], s[1]) for s in sched["storms"]))
        return History(
            seed=d["seed"], seconds=d["seconds"], witness=d["witness"], bounds=bounds, schedule=schedule,
            t0=d["t0"], end=d["end"], last_heal=d["last_heal"], replay=d["replay"],
            applied=[Applied.from_dict(a) for a in d["applied"]],
            samples={n: [Sample(*s) for s in v] for n, v in d["samples"].items()},
            registrations=[Registration(*r) for r in d["registrations"]], vip=[VipAnswer(*v) for v in d["vip"]],
            writes=[Write(**(w | {"stamp": tuple(w["stamp"]) if w.get("stamp") else None})) for w in d["writes"]],
            life=[Life(*x) for x in d["life"]],
            final_config={n: (v[0], v[1], v[2]) for n, v in d["final_config"].items()},
            manager=d["manager"],
        )

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.as_dict(), separators=(",", ":")))
        return path

    @staticmethod
    def load(path: Path) -> History:
        return History.from_dict(json.loads(path.read_text()))
