"""The SPEC's time bounds for a pair's I, T and N (and the witness's lease), and the margin on top.

One implementation for every observer (``PairWatch`` and the nemesis). The margin is the fault lab's:
max(2 s, 2·I) for a loaded 2-core machine (process start-up, scheduling, an observer's own polls),
never design slack; the one-tick overlap of SPEC 12 gets none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ETCD_SWEEP_S = 0.5  # etcd expires leases on a 500 ms sweep: a dead holder's key can outlive L by that much
CTI_LAPSE_S = 0.5  # the CTI manager drops a registration 0.5 s after its last keepalive (SPEC 10)
CTI_STOP_GRACE_S = 2.0  # the supervisor's SIGTERM-to-SIGKILL grace for a CTI server that will not stop


@dataclass(frozen=True)
class Bounds:
    interval: float
    timeout: float
    failures: int
    witness: bool = False
    lease_ttl: float | None = None  # L as etcd grants it (a witness run)
    lb_follow: float = 0.5  # HAProxy's worst time to follow a role change (hotstandby.haproxy.check_timing)

    @property
    def margin(self) -> float:
        return max(2.0, 2 * self.interval)

    @property
    def r1(self) -> float:
        """Peer death to ACTIVE: N·I + T + I; with a witness, also the dead holder's lease running out
        (L after its last renewal, plus etcd's sweep, plus the tick that takes the key)."""
        base = self.failures * self.interval + self.timeout + self.interval
        if self.witness and self.lease_ttl is not None:
            return max(base, self.lease_ttl + ETCD_SWEEP_S + self.interval)
        return base

    @property
    def r3(self) -> float:
        return self.failures * self.interval + self.interval

    @property
    def r4(self) -> float:
        return 2 * self.failures * self.interval + self.interval

    @property
    def r5(self) -> float:
        return self.failures * self.interval + self.timeout + self.interval

    @property
    def r7(self) -> float:
        return self.interval

    r9_respawn = property(lambda self: self.interval)
    r10_peer = 2.0
    r10_exit = 5.0

    @property
    def one_tick(self) -> float:
        return self.interval

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {name: getattr(self, name) for name in
                               ("margin", "r1", "r3", "r4", "r5", "r7", "r9_respawn", "r10_peer", "r10_exit",
                                "one_tick")}
