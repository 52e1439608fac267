"""Hand-made histories for the checker's tests: roles as step functions, polled every 50 ms like the recorder."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.bounds import Bounds
from lab.nemesis.faults import Fault, Kind, Schedule
from lab.nemesis.history import Applied, History, Life, Registration, Sample, VipAnswer, Write

POLL = 0.05
BOUNDS = Bounds(0.5, 0.5, 3, lb_follow=0.25)  # R1 2.5, R3 2.0, R4 3.5, R5 2.5, R7 0.5; margin 2


@dataclass
class Story:
    """A run told by hand: ``roles(node, (t, role, cause), ...)``, faults with their windows, registrations."""

    end: float = 60.0
    witness: bool = False
    storms: list[tuple[float, float]] = field(default_factory=list)
    steps: dict[str, list[tuple[float, str | None, str]]] = field(default_factory=dict)
    applied: list[Applied] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    vip: list[VipAnswer] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    life: list[Life] = field(default_factory=list)
    final: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    vips: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # node: (t, vip_address value)
    maintenance: list[tuple[float, float]] = field(default_factory=list)
    failing: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # node: spans it counts failures

    def roles(self, node: str, *steps: tuple[float, str | None] | tuple[float, str | None, str]) -> Story:
        """From each t on, the node answers with that role (None: no answer, e.g. frozen or down)."""
        self.steps[node] = [(s[0], s[1], s[2] if len(s) > 2 else "start") for s in steps]  # type: ignore[misc]
        return self

    def fault(self, kind: Kind, start: float, heal: float | None = None, *, node: str | None = None,
              target: str | None = None, edges: tuple[tuple[str, str], ...] = (), status: int | None = None,
              result: str = "ok", answered: float | None = None) -> Applied:
        f = Fault(len(self.applied) + 1, kind, start, 0.0 if heal is None else heal - start, node=node,
                  target=target, edges=edges)
        a = Applied(f, node=node, target=target, start=(start, start + 0.01),
                    heal=None if heal is None else (heal, heal + 0.01), result=result, status=status,
                    answered=answered)
        self.applied.append(a)
        if kind is Kind.KILL and node:  # the recorder would see the process go and come back
            self.life.append(Life(start + 0.05, node, "exit", "-9"))
        if kind in (Kind.KILL, Kind.TERM) and node and heal is not None:
            self.life.append(Life(heal + 0.02, node, "start"))
        return a

    def holds(self, node: str, start: float, end: float | None, epoch: int = 1, stale: bool = False) -> Story:
        self.registrations.append(Registration(start, "register", node, epoch, stale))
        if end is not None:
            self.registrations.append(Registration(end, "unregister", node, epoch))
        return self

    def history(self) -> History:
        samples: dict[str, list[Sample]] = {}
        for node, steps in self.steps.items():
            out = []
            t = 0.0
            while t < self.end:
                role, cause = None, "start"
                for at, r, c in steps:
                    if at <= t:
                        role, cause = r, c
                vip = None
                for at, v in self.vips.get(node, []):
                    if at <= t:
                        vip = v
                maint = any(a <= t <= b for a, b in self.maintenance)
                fails = next((int((t - a) / BOUNDS.interval) + 1 for a, b in self.failing.get(node, []) if a <= t <= b),
                             0)
                out.append(Sample(t, t + 0.005, role, 1, cause, maint, vip if vip is not None else "", None, None,
                                  fails) if role else Sample(t, t + 0.5))
                t = round(t + POLL, 3)
            samples[node] = out
        faults = tuple(a.fault for a in self.applied)
        bounds = Bounds(BOUNDS.interval, BOUNDS.timeout, BOUNDS.failures, self.witness, 2.0 if self.witness else None,
                        BOUNDS.lb_follow)
        return History(seed=0, seconds=self.end, witness=self.witness, bounds=bounds,
                       schedule=Schedule(0, self.end, self.witness, faults, tuple(self.storms)), end=self.end,
                       last_heal=self.storms[-1][1] if self.storms else 0.0, replay="(by hand)",
                       applied=self.applied, samples=samples, registrations=sorted(self.registrations),
                       vip=self.vip, writes=self.writes, life=self.life, final_config=self.final)


def stamp(ms: int, origin: str = "server1") -> tuple[str, str]:
    from hotstandby.hlc import Timestamp

    return str(Timestamp(1_800_000_000_000 + ms, 0)), origin


def steady_pair(end: float = 60.0) -> Story:
    """server1 ACTIVE with CTI, server2 STANDBY, from the start to ``end``."""
    return Story(end=end).roles("server1", (0, "ACTIVE")).roles("server2", (0, "STANDBY")).holds("server1", 0, None)


_ = Kind  # re-exported for the tests' convenience
