"""The values the decision core works on: frozen, comparable, no behaviour beyond naming things.

The ones made on every tick are NamedTuples (a fraction of a frozen dataclass's cost to build, for the
arbiter and the simulator alike); the field-less plan steps stay dataclasses, since NamedTuples without
fields would all equal ``()``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple


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
    CANNOT_PERSIST = "cannot_persist"  # R13: the database refuses writes (disk full, read-only)


class PeerView(NamedTuple):
    """What the peer said about itself in the last state exchange."""

    node_id: str
    role: Role
    epoch: int
    lan_ok: bool = True
    maintenance: bool = False
    can_be_active: bool = True  # its LAN is fine and it can persist a role


class WitnessView(NamedTuple):
    """What one tick saw of the witness (SPEC 12), measured by the edge just before deciding."""

    reachable: bool  # the renewal and the read of the key both answered this tick
    renewal_age_s: float | None  # since our last successful lease renewal was sent; None: never renewed
    lease_ttl_s: float | None  # L, as etcd granted it; None: no lease yet
    holder: str | None = None  # the node the key names (last read); None: nobody
    holds: bool = False  # the key names this node and is bound to its live lease


class Observation(NamedTuple):
    """Everything one tick learned from the outside world; the edges fill it in, bounded by T."""

    probe_ok: bool  # the peer's monitor answered mod=NONE (or IPSWS) validly within T
    peer: PeerView | None = None  # None: the state exchange with the peer arbiter failed
    lan_ok: bool | None = None  # None: no LAN probes configured, the check is off
    vip_node: str | None = None  # node the VIP routed /whoami to; None: not checked or no answer
    witness: WitnessView | None = None  # None: no witness configured (HS_WITNESS_URL empty)
    store_problem: str | None = None  # why the database refuses writes (R13); None: it takes them


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
        """A copy with ``changes`` (``dataclasses.replace``'s checks, at a fraction of its cost: every tick
        of the arbiter and of the simulator evolves its state)."""
        if not changes.keys() <= _STATE_FIELDS:
            return replace(self, **changes)  # type: ignore[arg-type]  # raises TypeError naming the field
        new = object.__new__(NodeState)
        new.__dict__.update(self.__dict__, **changes)
        return new


_STATE_FIELDS = frozenset(NodeState.__dataclass_fields__)


class Decision(NamedTuple):
    """A tick's outcome: the state to commit, the effects to apply, and the one sentence that explains it."""

    state: NodeState
    reason: str
    actions: tuple[Action, ...] = ()
    rule: str | None = None  # "R1".."R8" when the role changes
    log: tuple[str, ...] = ()  # extra fault-tolerant log lines (probe counts)
    why: str = ""  # the cause part of a switch's reason (after the rule), passed on to the peer

    @property
    def switched(self) -> bool:
        return self.rule is not None


# -- plans: every role change, automatic or commanded, as the core made it ---------------------
#
# A plan is refused (with the reason) or a tuple of steps carried out in order by
# ``hotstandby.carry.carry_out``, which the arbiter and the simulator both drive. Its steps:


class Commit(NamedTuple):
    """Take the role ``decision`` made (from the state the plan was made on). A promotion first takes the
    witness key (no key, no promotion); then role, epoch and cause are persisted before any later step."""

    decision: Decision
    kept: NodeState | None = None  # the state to keep when the promotion cannot happen (default: the current one)


class Change(NamedTuple):
    """A role change decided when the step runs, from the state then (it follows a step that waited on the
    peer, so the state may have moved): ``rules.promote`` or ``rules.demote``, then as ``Commit``."""

    role: Role
    rule: str
    cause: Cause
    why: str  # "{detail}" in it is replaced by what made the plan fail (a rollback)
    peer: bool = False  # promote: tell the peer to go STANDBY first; demote: hand ACTIVE over after
    epoch: int = 0  # the least epoch a promotion takes (the one a switch announced to the peer)


@dataclass(frozen=True)
class StopCti:
    """Stop CTI (the role that stops it is durable already)."""


@dataclass(frozen=True)
class StartCti:
    """Start CTI, if this node is still ACTIVE when the step runs."""


@dataclass(frozen=True)
class ReleaseKey:
    """Our CTI is down: delete the witness key if it names us, so the peer takes it without waiting for L."""


@dataclass(frozen=True)
class TendKey:
    """After a tick: an ACTIVE whose key vanished takes it back; a STANDBY holding it releases it."""


class Tell(NamedTuple):
    """``POST /peer/role``: ask the peer to take ``role``, wait for its answer (at most ``timeout``)."""

    role: Role
    cause: Cause
    why: str | None  # None: the why of the role change before it in the plan
    timeout: float
    epoch: int | None = None  # None: ours when the step runs (plus one to make the peer ACTIVE)
    refused: str | None = None  # the plan stops unless the peer obeys: this refusal ("{detail}": its answer)
    unreached: str | None = None  # the same when no answer came (None: an unreachable peer does not stop it)
    note: str = ""  # added to the next role change's why when the plan went on without an answer


Step = Commit | Change | StopCti | StartCti | ReleaseKey | TendKey | Tell


class Plan(NamedTuple):
    """A role change the core made: the steps that carry it out in order, or why it is refused."""

    reason: str  # the sentence: what the plan does, or why it is refused
    steps: tuple[Step, ...] = ()
    refused: bool = False  # nothing is done; ``reason`` says why (a switch's 409)
    rollback: tuple[Step, ...] = ()  # carried out when a step that must succeed fails
    always: tuple[Step, ...] = ()  # carried out last, whatever happened (a tick tends the witness key)
    failed: str = "{detail}"  # the refusal when a promotion in it cannot happen ("{detail}": why)
    rule: str | None = None
    log: tuple[str, ...] = ()  # fault-tolerant log lines written before the steps (a tick's probe counts)
