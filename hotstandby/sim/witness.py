"""The simulated witness (SPEC 12): an etcd with leases, one key and a revision, and each node's client of it.

``Etcd`` is the third party as the real one behaves where it matters to us:

- a lease is granted the TTL asked for, in whole seconds and at least etcd's minimum (2 s with its
  default election timeout), and revoked when it has not been kept alive for its TTL, up to 0.5 s
  late (etcd's expiry sweep); a keep-alive that arrives after the TTL ran out finds it gone;
- revoking a lease deletes the key bound to it; every write (put, delete, a revoke that deletes) is
  one revision, and the revision never goes back;
- after an outage its leader starts every lease's TTL afresh (as etcd does on a leader change).

``Client`` mirrors ``hotstandby.witness.EtcdWitness``: its own lease renewed every tick, the report
the core reads (``view``), and the guarded take, reassert and release of the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hotstandby.model import WitnessView
from hotstandby.witness import NOT_CONTACTED

MIN_TTL = 2  # etcd's minimum TTL with its default election timeout
EXPIRY_LATE_S = 0.5  # etcd's expiry sweep may revoke a lease up to this late


@dataclass
class Lease:
    id: int
    ttl: int
    expires: float  # when its TTL runs out, unless kept alive before
    owner: int  # the node that was granted it


@dataclass(frozen=True)
class Key:
    node: int  # the node index the value names
    epoch: int
    lease: int
    revision: int


class Etcd:
    def __init__(self) -> None:
        self.up = True
        self.revision = 1
        self.leases: dict[int, Lease] = {}
        self.key: Key | None = None
        self.next_id = 1

    def grant(self, ttl: int, now: float, owner: int) -> Lease:
        granted = max(ttl, MIN_TTL)
        lease = Lease(self.next_id, granted, now + granted, owner)
        self.next_id += 1
        self.leases[lease.id] = lease
        return lease

    def revoke(self, lease_id: int) -> None:
        if self.leases.pop(lease_id, None) is not None and self.key is not None and self.key.lease == lease_id:
            self.key = None
            self.revision += 1

    def write(self, node: int, epoch: int, lease: int) -> Key:
        self.revision += 1
        self.key = Key(node, epoch, lease, self.revision)
        return self.key

    def delete(self) -> None:
        self.key = None
        self.revision += 1

    def restarted(self, now: float) -> None:
        """Back from an outage: a new leader starts every lease's TTL afresh."""
        self.up = True
        for lease in self.leases.values():
            lease.expires = now + lease.ttl


def ttl_request(n: int, interval: float) -> int:
    """max(N·I, 1 s) in whole seconds, as ``hotstandby.witness.lease_ttl_request`` asks it."""
    return max(1, math.ceil(n * interval - 1e-9))


class Client:
    """One node's view of the witness, as ``EtcdWitness`` keeps it."""

    __slots__ = ("detail", "granted", "holder", "holds", "lease", "reachable", "renewed_at", "writes")

    def __init__(self) -> None:
        self.lease: int | None = None
        self.granted: float | None = None
        self.reachable = False
        self.renewed_at: float | None = None  # when the last successful renewal was sent
        self.holder: int | None = None
        self.holds = False
        self.writes = 0  # our own key writes so far: a renewal read before one must not undo it
        self.detail = NOT_CONTACTED

    def view(self, now: float, ids: tuple[str, str], shift: float = 0.0) -> WitnessView:
        """What the core reads, the renewal's age taken now (``shift``: a planted bug makes it look younger)."""
        age = None if self.renewed_at is None else max(0.0, now - self.renewed_at - shift)
        return WitnessView(reachable=self.reachable, renewal_age_s=age, lease_ttl_s=self.granted,
                           holder=None if self.holder is None else ids[self.holder], holds=self.holds)

    def vouches(self) -> bool:
        return self.reachable or self.detail == NOT_CONTACTED

    def wrote(self, holder: int | None, me: int) -> None:
        self.writes += 1
        self.reachable, self.detail = True, "ok"
        self.holder, self.holds = holder, holder == me
