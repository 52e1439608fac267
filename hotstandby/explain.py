"""`hotstandby explain`: what the core would decide on the next tick and why, and what would happen if ...

Pacemaker's crm_simulate for the pair: from the node's state and the last tick's observation (the
arbiter keeps both), run the same pure ``rules.decide`` the loop runs, once for the next tick as
observed, then tick by tick with a hypothetical applied (the peer dies, the LAN is lost, the VIP
moves) until the role changes or enough ticks have passed to know it will not. Pure: nothing here
does I/O, and nothing the node holds changes (its state is a frozen value; these are copies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from hotstandby import rules
from hotstandby.model import (
    Change,
    Commit,
    Decision,
    NodeState,
    Observation,
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

Scenario = Literal["peer-dead", "lan-lost", "vip-to", "switch", "stop"]
SCENARIOS: tuple[str, ...] = ("peer-dead", "lan-lost", "vip-to", "switch", "stop")
COMMANDED = ("switch", "stop")  # scenarios that are a plan of the core (rules.plan_switch, rules.plan_stop)


@dataclass(frozen=True)
class Tick:
    tick: int
    after_s: float  # from now, at one tick every I
    decision: Decision


def decision_json(d: Decision) -> dict[str, Any]:
    s = d.state
    return {"reason": d.reason, "rule": d.rule, "role": s.role.value, "epoch": s.epoch, "cause": s.cause.value,
            "actions": [a.value for a in d.actions], "switched": d.switched}


def observation_json(obs: Observation) -> dict[str, Any]:
    p, w = obs.peer, obs.witness
    return {
        "probe_ok": obs.probe_ok,
        "peer": None if p is None else {"node_id": p.node_id, "role": p.role.value, "epoch": p.epoch,
                                        "lan_ok": p.lan_ok, "maintenance": p.maintenance,
                                        "can_be_active": p.can_be_active},
        "lan_ok": obs.lan_ok, "vip_node": obs.vip_node,
        "witness": None if w is None else {"reachable": w.reachable, "holder": w.holder, "holds": w.holds,
                                           "lease_ttl_s": w.lease_ttl_s, "renewal_age_s": w.renewal_age_s},
    }


def observation_words(obs: Observation, cfg: ClusterSettings) -> str:
    """The last tick's observation in one line."""
    p = obs.peer
    parts = ["peer probe ok" if obs.probe_ok else "peer probe FAILED",
             "exchange failed" if p is None else f"exchange ok ({p.node_id} {p.role}, epoch {p.epoch}"
             + ("" if p.lan_ok else ", its LAN failing") + (", maintenance" if p.maintenance else "") + ")",
             "LAN check off" if obs.lan_ok is None else "LAN ok" if obs.lan_ok else "LAN FAILED",
             ("VIP not checked" if not cfg.test_vip_destination else
              "VIP routes to nobody (no answer)" if obs.vip_node is None else f"VIP routes to {obs.vip_node}")]
    w = obs.witness
    if w is None:
        parts.append("no witness")
    else:
        parts.append("witness unreachable" if not w.reachable else
                     f"witness: key held by {w.holder or 'nobody'}")
    return ", ".join(parts)


def hypothetical(name: str, target: str | None, obs: Observation, cfg: ClusterSettings,
                 state: NodeState) -> tuple[Observation, str]:
    """The observation every later tick would make, and the assumption in words."""
    peer = state.peer_id
    if name == "peer-dead":
        return (obs._replace(probe_ok=False, peer=None),
                f"{peer} dies now: its monitor probe and the state exchange fail on every tick")
    if name == "lan-lost":
        if obs.lan_ok is None:
            return obs, "this node loses its LAN; but lan_probe_addresses is empty, so the LAN check is off and " \
                        "nothing notices"
        return obs._replace(lan_ok=False), "this node loses its LAN: every LAN probe target stops answering"
    if name == "vip-to":
        if target not in ("server1", "server2"):
            raise ValueError("vip-to: target must be server1 or server2")
        if not cfg.test_vip_destination:
            return obs, (f"the VIP routes to {target}; but test_vip_destination is off, so where the VIP routes "
                         "is not checked")
        return obs._replace(vip_node=target), f"the load balancer routes the VIP to {target} from now on"
    raise ValueError(f"scenario: one of {', '.join(SCENARIOS)}")


def _lease_expired(w: WitnessView | None, peer: str, after_s: float) -> WitnessView | None:
    """A dead peer's key goes when its lease expires (L after its last renewal, at most)."""
    if w is None or w.holder != peer or w.lease_ttl_s is None or after_s < w.lease_ttl_s:
        return w
    return w._replace(holder=None)


def step_words(step: Step, me: str, peer: str) -> str:
    """One step of a plan in words, as the arbiter would carry it out."""
    if isinstance(step, Commit):
        d = step.decision
        return f"{me} commits {d.state.role} at epoch {d.state.epoch} (persisted before anything follows): {d.reason}"
    if isinstance(step, Change):
        what = (f"{me} takes ACTIVE ({step.rule}, the witness key first when there is one)"
                if step.role is Role.ACTIVE else f"{me} steps down to STANDBY ({step.rule})")
        return what + ", persisted before anything follows"
    if isinstance(step, Tell):
        epoch = "" if step.epoch is None else f" at epoch {step.epoch}"
        must = "; the plan stops unless it obeys" if step.refused else ""
        return f"{peer} is told to go {step.role}{epoch} (waiting at most {step.timeout:g} s){must}"
    if isinstance(step, StopCti):
        return f"{me} stops its CTI server"
    if isinstance(step, StartCti):
        return f"{me} starts its CTI server (if still ACTIVE)"
    if isinstance(step, ReleaseKey):
        return f"{me} releases the witness key (if it holds it)"
    if isinstance(step, TendKey):
        return f"{me} tends the witness key"
    return str(step)


def commanded(name: str, target: str | None, obs: Observation, cfg: ClusterSettings,
              state: NodeState) -> tuple[Plan, str]:
    """The plan the core would make for an operator's switch to ``target`` (not forced) or a SIGTERM now."""
    if name == "stop":
        return rules.plan_stop(state, cfg), f"{state.node_id} gets SIGTERM now (a graceful stop, R10)"
    if target not in ("server1", "server2"):
        raise ValueError("switch: target must be server1 or server2")
    unfit = ("its LAN check fails" if obs.lan_ok is False else
             f"it cannot persist its role ({obs.store_problem})" if obs.store_problem else None)
    plan = rules.plan_switch(state, target, cfg, force=False, who="an operator", unfit=unfit, view=obs.peer,
                             probe=None if obs.probe_ok else "its monitor probe failed on the last tick")
    return plan, f"an operator asks for a switch to {target} now (R7, not forced)"


def play(state: NodeState, obs: Observation, cfg: ClusterSettings, *, peer_dies: bool = False,
         most: int | None = None) -> list[Tick]:
    """Ticks of the pure core on ``obs`` from ``state``, until the role changes (or ``most`` ticks: enough for
    any counted rule, N + 2 by default)."""
    n = most if most is not None else cfg.failures_to_switch + 2
    steps: list[Tick] = []
    for k in range(1, n + 1):
        after = k * cfg.heartbeat_interval_s
        seen = obs._replace(witness=_lease_expired(obs.witness, state.peer_id, after)) if peer_dies else obs
        d = rules.decide(state, seen, cfg)
        steps.append(Tick(k, after, d))
        if d.switched or d.state.role is not state.role:
            break
        state = d.state
    return steps


def explain(state: NodeState, obs: Observation | None, cfg: ClusterSettings, *, scenario: str | None = None,
            target: str | None = None, observed_at: str | None = None) -> dict[str, Any]:
    """The explanation as data (GET /explain answers it; the CLI prints it)."""
    out: dict[str, Any] = {
        "node_id": state.node_id, "rank": state.rank.value, "role": state.role.value, "epoch": state.epoch,
        "cause": state.cause.value, "maintenance": state.maintenance,
        "peer_failures": state.peer_failures, "failures_to_switch": cfg.failures_to_switch,
        "observed_at": observed_at, "observed": None, "observed_words": None, "next_tick": None, "scenario": None,
    }
    if obs is None:
        out["next_tick"] = {"reason": "no tick completed yet: nothing observed to decide from", "rule": None,
                            "role": state.role.value, "epoch": state.epoch, "cause": state.cause.value,
                            "actions": [], "switched": False}
        return out
    out["observed"] = observation_json(obs)
    out["observed_words"] = observation_words(obs, cfg)
    out["next_tick"] = decision_json(rules.decide(state, obs, cfg))
    if scenario is None:
        return out
    if scenario in COMMANDED:
        plan, assumes = commanded(scenario, target, obs, cfg, state)
        me, peer = state.node_id, state.peer_id
        words = [step_words(st, me, peer) for st in plan.steps]
        if plan.rollback:
            words.append("if that fails: " + "; ".join(step_words(st, me, peer) for st in plan.rollback))
        outcome = f"refused: {plan.reason}" if plan.refused else plan.reason
        out["scenario"] = {"name": scenario, "target": target, "assumes": assumes, "outcome": outcome,
                           "ticks": [], "steps": words}
        return out
    seen, assumes = hypothetical(scenario, target, obs, cfg, state)
    steps = play(state, seen, cfg, peer_dies=scenario == "peer-dead")
    last = steps[-1].decision
    if last.switched:
        outcome = (f"{state.node_id} becomes {last.state.role} on tick {steps[-1].tick} "
                   f"(about {steps[-1].after_s:g} s from now), epoch {last.state.epoch} ({last.rule})")
    else:
        outcome = f"{state.node_id} stays {state.role} (nothing fires within {len(steps)} ticks)"
        if state.role is Role.ACTIVE and scenario == "peer-dead":
            outcome += f"; {state.peer_id} is lost to it, and its status shows Error after N failed probes"
    out["scenario"] = {"name": scenario, "target": target, "assumes": assumes, "outcome": outcome, "steps": [],
                       "ticks": [{"tick": s.tick, "after_s": round(s.after_s, 3)} | decision_json(s.decision)
                                 for s in steps]}
    return out
