"""Carrying out a plan, without I/O: the one runner that the arbiter and the simulator both drive.

``carry_out(plan, ...)`` is a generator. It yields an *effect* (a small value below) each time it
needs the world, and is sent back the effect's result; the arbiter answers with real SQLite, HTTP,
etcd and CTI (``services/arbiter/roles.py``), the simulator with simulated ones
(``hotstandby/sim/world.py``), each in its own time (an ``Ask`` may take T). What a step means is
decided here, once:

- a role change (``Commit``, ``Change``) that promotes takes the witness key first (no key, no
  promotion; the epoch becomes the key's revision); role, epoch and cause are persisted before the
  change is adopted and before any later step; a promotion that cannot be persisted does not happen;
- ``StartCti`` starts CTI only if the node is still ACTIVE; ``ReleaseKey`` follows ``StopCti``;
- a ``Tell`` whose peer does not obey stops the plan when the step says so: the rollback runs and
  the plan ends refused with the step's reason;
- every line of the fault-tolerant log about a role change comes from here (``Say``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, NamedTuple

from hotstandby import rules
from hotstandby.model import (
    Change,
    Commit,
    Decision,
    NodeState,
    PeerView,
    Plan,
    ReleaseKey,
    Role,
    StartCti,
    Step,
    StopCti,
    Tell,
    TendKey,
    WitnessView,
)
from hotstandby.settings import ClusterSettings

# -- the effects a driver performs, and what it answers --------------------------------------------


class TakeKey(NamedTuple):
    """Take the witness key for a promotion -> ``Taken`` (``hotstandby.witness``), or None without a witness."""

    epoch: int  # the least epoch to write


class Reassert(NamedTuple):
    """An ACTIVE whose key vanished takes it back, same epoch -> ``Taken``."""

    epoch: int


@dataclass(frozen=True)
class KeyNow:
    """What the witness last said of the key -> ``WitnessView``, or None without a witness."""


class Persist(NamedTuple):
    """Write role, epoch and cause to the database, in one transaction with the history line of the role change
    ``decision`` makes (SPEC 13) -> None, or the error's text."""

    state: NodeState
    decision: Decision


class Adopt(NamedTuple):
    """The decision is ours now: hold its state (``durable``: role, epoch or cause changed) -> None."""

    decision: Decision
    durable: bool


class Ask(NamedTuple):
    """``POST /peer/role`` and wait at most ``timeout`` -> ``Answer``."""

    role: Role
    epoch: int
    cause: Any  # Cause
    why: str
    timeout: float


class Answer(NamedTuple):
    ok: bool  # the peer obeyed
    answered: bool  # a definite answer came (a refusal, when not ok)
    detail: str
    role: Role | None = None  # what the peer then is, when it obeyed
    epoch: int | None = None
    unauthorized: bool = False  # it refused our signature: as good as unreachable for a switch


class Heard(NamedTuple):
    """The peer's answer is the freshest word on its role: hold ``state`` (its view updated) -> None."""

    state: NodeState


class Say(NamedTuple):
    """A line of the fault-tolerant log -> None. ``once``: not again while it is the last sentence."""

    line: str
    once: bool = False


Effect = TakeKey | Reassert | KeyNow | Persist | Adopt | Ask | Heard | Say | StopCti | StartCti | ReleaseKey


class Outcome(NamedTuple):
    refused: bool  # the plan did not do what it meant to (its reason says why)
    reason: str  # the sentence: the last role change's, a refusal's, or the plan's
    applied: Decision | None  # the last decision adopted


Run = Generator[Effect, Any, Outcome]


def carry_out(plan: Plan, cfg: ClusterSettings, state: Callable[[], NodeState]) -> Run:
    """Run ``plan``'s steps in order against a driver; ``state()`` is the node's state as it is now."""
    return _Runner(cfg, state).run(plan)


class _Runner:
    def __init__(self, cfg: ClusterSettings, state: Callable[[], NodeState]) -> None:
        self.cfg, self.state = cfg, state
        self.applied: Decision | None = None
        self.why = ""  # the last role change's why: what a Tell without its own passes on
        self.note = ""  # what a forced step adds to the next change's why

    def run(self, plan: Plan) -> Run:
        if plan.refused:
            return Outcome(True, plan.reason, None)
        steps = plan.steps
        if len(steps) == 1 and not plan.always and isinstance(steps[0], Commit):
            # Most ticks: one decision that changes counters only. The same as steps() would do, in one frame.
            d, old = steps[0].decision, self.state()
            new = d.state
            if new.role is old.role and new.epoch == old.epoch and new.cause is old.cause \
                    and new.maintenance is old.maintenance:
                yield Adopt(d, False)
                return Outcome(False, d.reason, d)
        failed = yield from self.steps(steps, "")
        if failed is not None:
            reason, answer = failed  # answer: what the peer said, when a Tell stopped the plan
            if answer is not None and plan.rollback:
                yield from self.steps(plan.rollback, answer)
            outcome = Outcome(True, reason if answer is not None else plan.failed.format(detail=reason), self.applied)
        else:
            applied = self.applied
            outcome = Outcome(False, applied.reason if applied is not None else plan.reason, applied)
        if plan.always:
            yield from self.steps(plan.always, "")
        return outcome

    def steps(self, steps: tuple[Step, ...], detail: str) -> Generator[Effect, Any, tuple[str, str | None] | None]:
        """None when every step was carried out, else (why the plan stops, the peer's answer when a Tell
        stopped it; None when a promotion could not happen)."""
        for step in steps:
            if isinstance(step, Commit | Change):
                if isinstance(step, Change):
                    why = step.why.format(detail=detail) + self.note
                    self.note = ""
                    d = rules.decide_change(self.state(), step, self.cfg, why=why)
                    kept = None
                else:
                    d, kept = step.decision, step.kept
                refused = yield from self.commit(d, kept)
                if refused is not None:
                    return refused, None
            elif isinstance(step, Tell):
                stop = yield from self.tell(step)
                if stop is not None:
                    return stop
            elif isinstance(step, StartCti):
                if self.state().role is Role.ACTIVE:
                    yield step
            elif isinstance(step, StopCti):
                yield step
            elif isinstance(step, ReleaseKey):
                yield from self.release()
            else:
                yield from self.tend(step)
        return None

    def commit(self, d: Decision, kept: NodeState | None) -> Generator[Effect, Any, str | None]:
        """Take the key (a promotion), persist, adopt; None, or why a promotion did not happen."""
        old = self.state()
        new = d.state
        if new.role is old.role and new.epoch == old.epoch and new.cause is old.cause:  # counters only: no I/O
            if new.maintenance is not old.maintenance:
                d = Decision(new.evolve(maintenance=old.maintenance), d.reason, d.actions, d.rule, d.log, d.why)
            yield Adopt(d, False)
            self.applied, self.why = d, d.why
            return None
        promotes = new.role is Role.ACTIVE and old.role is not Role.ACTIVE
        if promotes:
            taken = yield TakeKey(d.state.epoch)
            if taken is not None and taken.ok:
                yield Say(f"Witness key {taken.detail}, epoch {taken.epoch}")
                d = rules.with_witness_epoch(d, taken.epoch)
            elif taken is not None:
                refused = rules.witness_refused(kept or old, d, taken.detail)
                yield Say(refused.reason, once=True)
                yield from self.commit(refused, None)
                return refused.reason
            old = self.state()
        new = d.state
        durable = (new.role, new.epoch, new.cause) != (old.role, old.epoch, old.cause)
        if durable:
            error = yield Persist(new, d)
            if error is not None:
                if promotes:
                    yield Say(f"Not taking ACTIVE: the role cannot be persisted ({error})")
                    refused = rules.not_promoted(kept or old, d, f"the role cannot be persisted ({error})")
                    yield Adopt(refused, False)
                    self.applied = refused
                    return refused.reason
                if new.role is not old.role:
                    # Stepping down is safe unpersisted: a restarted node is STANDBY whatever it stored.
                    yield Say(f"Role change not persisted ({error}); stepping down anyway")
        maintenance = self.state().maintenance
        if new.maintenance is not maintenance:  # the exchange's to change, also while we waited on the edges
            d = Decision(new.evolve(maintenance=maintenance), d.reason, d.actions, d.rule, d.log, d.why)
        yield Adopt(d, durable)
        self.applied, self.why = d, d.why
        if d.switched or new.role is not old.role:
            yield Say(d.reason)
        return None

    def tell(self, step: Tell) -> Generator[Effect, Any, tuple[str, str] | None]:
        """Ask the peer; None, or (the refusal that stops the plan, the peer's answer)."""
        s = self.state()
        epoch = step.epoch if step.epoch is not None else s.epoch + (1 if step.role is Role.ACTIVE else 0)
        answer: Answer = yield Ask(step.role, epoch, step.cause, step.why if step.why is not None else self.why,
                                   step.timeout)
        peer = s.peer_id
        if answer.ok:
            if answer.role is not None and answer.epoch is not None:
                now = self.state()
                old = now.peer or PeerView(node_id=peer, role=answer.role, epoch=answer.epoch)
                yield Heard(now.evolve(peer=PeerView(old.node_id, answer.role, answer.epoch, old.lan_ok,
                                                     old.maintenance, old.can_be_active)))
            yield Say(f"Server {peer} confirmed {step.role.value} (epoch {epoch})")
            return None
        if answer.answered:
            yield Say(f"Server {peer} refused {step.role.value}: {answer.detail}")
        else:
            yield Say(f"Server {peer} not reached to make it {step.role.value}: {answer.detail}")
        stop = step.refused if answer.answered and not answer.unauthorized else step.unreached
        if stop is not None:
            return stop.format(detail=answer.detail), answer.detail
        if not answer.answered or answer.unauthorized:
            self.note += step.note
        return None

    def release(self) -> Generator[Effect, Any, None]:
        if not (yield ReleaseKey()):
            yield Say("Witness key not released (unreachable): the peer waits for our lease to expire")

    def tend(self, _: TendKey) -> Generator[Effect, Any, None]:
        """An ACTIVE whose key vanished (its lease lapsed during an outage it rode out on the failsafe) takes
        it back; a STANDBY never holds it (a release that failed, a previous life)."""
        w: WitnessView | None = yield KeyNow()
        if w is None or not w.reachable:
            return
        s = self.state()
        if s.role is Role.ACTIVE and w.holder is None:
            taken = yield Reassert(s.epoch)
            yield Say(f"Witness key re-taken while ACTIVE (epoch {s.epoch})" if taken.ok
                      else f"Witness key not re-taken: {taken.detail}")
        elif s.role is Role.STANDBY and w.holder == s.node_id:
            yield from self.release()


__all__ = [
    "Adopt",
    "Answer",
    "Ask",
    "Effect",
    "Heard",
    "KeyNow",
    "Outcome",
    "Persist",
    "Reassert",
    "Run",
    "Say",
    "TakeKey",
    "carry_out",
]
