"""The values the decision core works on: frozen, comparable, no behaviour beyond naming things."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Role(StrEnum):
    ACTIVE = "ACTIVE"
    STANDBY = "STANDBY"


class Rank(StrEnum):
    PRIMARY = "primary"
    BACKUP = "backup"


def rank_of(node_id: str) -> Rank:
    return Rank.PRIMARY if node_id == "server1" else Rank.BACKUP


def other(node_id: str) -> str:
    return "server2" if node_id == "server1" else "server1"


class Action(StrEnum):
    """Side effects a decision asks for, applied in order after the new state is committed."""

    DEMOTE_PEER = "demote_peer"  # tell the peer to go STANDBY (and stop CTI) before we start ours
    STOP_CTI = "stop_cti"
    START_CTI = "start_cti"
    PROMOTE_PEER = "promote_peer"  # hand ACTIVE to the peer, after our CTI stopped


class Cause(StrEnum):
    """Why a node holds its current role; `manual` makes a role sticky against R3 failback."""

    START = "start"
    FAILOVER = "failover"  # R1
    FAILBACK = "failback"  # R3
    DUAL_ACTIVE = "dual_active"  # R4
    LAN_LOST = "lan_lost"  # R5
    NO_ACTIVE = "no_active"  # R6
    MANUAL = "manual"  # R7
    VIP = "vip"  # R8
    SHUTDOWN = "shutdown"  # R10
    PEER = "peer"  # a role command from the peer (handover, failback, switch)
    STANDALONE = "standalone"  # enabled = false
    WITNESS = "witness"  # R12: the witness was lost, or names the peer ACTIVE


@dataclass(frozen=True)
class PeerView:
    """What the peer said about itself in the last state exchange."""

    node_id: str
    role: Role
    epoch: int
    lan_ok: bool = True
    maintenance: bool = False
    can_be_active: bool = True  # its LAN is fine and it can persist a role


@dataclass(frozen=True)
class WitnessView:
    """What one tick saw of the witness (SPEC 12), measured by the edge just before deciding."""

    reachable: bool  # the renewal and the read of the key both answered this tick
    renewal_age_s: float | None  # since our last successful lease renewal was sent; None: never renewed
    lease_ttl_s: float | None  # L, as etcd granted it; None: no lease yet
    holder: str | None = None  # the node the key names (last read); None: nobody
    holds: bool = False  # the key names this node and is bound to its live lease


@dataclass(frozen=True)
class Observation:
    """Everything one tick learned from the outside world; the edges fill it in, bounded by T."""

    probe_ok: bool  # the peer's monitor answered mod=NONE (or IPSWS) validly within T
    peer: PeerView | None = None  # None: the state exchange with the peer arbiter failed
    lan_ok: bool | None = None  # None: no LAN probes configured, the check is off
    vip_node: str | None = None  # node the VIP routed /whoami to; None: not checked or no answer
    witness: WitnessView | None = None  # None: no witness configured (HS_WITNESS_URL empty)


@dataclass(frozen=True)
class NodeState:
    """The arbiter's memory between ticks. role/epoch/cause are durable, counters are not."""

    node_id: str
    role: Role = Role.STANDBY
    epoch: int = 0
    cause: Cause = Cause.START
    maintenance: bool = False
    peer_failures: int = 0
    peer_successes: int = 0
    probed: bool = False  # at least one probe of the peer has completed
    lan_failures: int = 0
    dual_active: int = 0
    both_standby: int = 0  # consecutive exchanges on which both nodes were STANDBY (R6 after a switch)
    vip_node: str | None = None
    vip_count: int = 0
    peer: PeerView | None = None  # last known; never cleared, so `role` of the peer survives a failed probe

    @property
    def rank(self) -> Rank:
        return rank_of(self.node_id)

    @property
    def peer_id(self) -> str:
        return other(self.node_id)

    def evolve(self, **changes: object) -> NodeState:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Decision:
    """A tick's outcome: the state to commit, the effects to apply, and the one sentence that explains it."""

    state: NodeState
    reason: str
    actions: tuple[Action, ...] = ()
    rule: str | None = None  # "R1".."R8" when the role changes
    log: tuple[str, ...] = field(default=())  # extra fault-tolerant log lines (probe counts)

    @property
    def switched(self) -> bool:
        return self.rule is not None
