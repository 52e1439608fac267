"""What the arbiter shows: ``GET /status`` (SPEC 3, the console's words) and the gauges of SPEC 8.

Pure reads of the arbiter's parts; nothing here changes state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hotstandby import rules
from hotstandby.model import Role, rank_of
from services.arbiter.memory import Memory

if TYPE_CHECKING:
    from services.arbiter.heartbeat import Arbiter

CTI_CONNECT_S = 0.5  # the vendor's typical CTI manager connect time, part of the expected delay


def status_words(role: Role | None) -> str:
    return {Role.ACTIVE: "Active (Primary)", Role.STANDBY: "Standby (Backup)"}.get(role, "Unknown")  # type: ignore[arg-type]


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def expected_delay(mem: Memory) -> float:
    return rules.expected_failover_delay(mem.cluster, connect_s=CTI_CONNECT_S,
                                         ports=mem.node.cti_ports, devices=mem.node.cti_devices)


def update_gauges(mem: Memory) -> None:
    m, n, s = mem.metrics, mem.node.node_id, mem.state
    numbers = (1 if s.role is Role.ACTIVE else 0, s.epoch, s.peer_failures, 0 if mem.lan_ok is False else 1,
               1 if s.maintenance else 0)
    last = mem.gauges_set
    if last is not None and last[0] == numbers and last[1] is mem.config.current:  # every tick asks; an idle
        return  # pair seldom changes any of them
    mem.gauges_set = (numbers, mem.config.current)
    for gauge, value in zip((m.role, m.epoch, m.consecutive_failures, m.lan_ok, m.maintenance), numbers, strict=True):
        gauge.labels(n).set(value)
    m.expected_delay.labels(n).set(expected_delay(mem))
    m.readings(peer_role=s.peer.role if s.peer else None, interval_s=mem.cluster.heartbeat_interval_s,
               digest=mem.config.digest())


def peer_status(mem: Memory) -> str:
    s = mem.state
    if not s.probed:
        return "Unknown"
    if s.peer_failures >= mem.cluster.failures_to_switch:
        return "Error"
    return status_words(s.peer.role if s.peer else None)


def status(a: Arbiter) -> dict[str, Any]:
    mem, ex = a.mem, a.exchange
    s, cfg = mem.state, mem.cluster
    peer_id = s.peer_id
    return {
        "local": {
            "node_id": s.node_id, "address": mem.node.local_address or cfg.address_of(s.node_id),
            "rank": s.rank.value, "role": s.role.value, "status": status_words(s.role), "epoch": s.epoch,
            "role_since": iso(mem.role_since), "cause": s.cause.value,
            "consecutive_failures": s.peer_failures, "consecutive_successes": s.peer_successes,
            "lan_ok": mem.lan_ok is not False, "lan_check": "off" if mem.lan_ok is None else "on",
            "cti": a.cti.snapshot(), "maintenance": s.maintenance, "last_decision": mem.last_reason,
            "channels": a.channels,
            "healthy": a.healthy()[0], "problem": mem.store_problem or ex.peer_auth_problem,
        },
        "peer": {
            "node_id": peer_id, "address": cfg.address_of(peer_id), "rank": rank_of(peer_id).value,
            "role": s.peer.role.value if s.peer else None, "status": peer_status(mem),
            "epoch": s.peer.epoch if s.peer else None, "role_since": ex.peer_info.get("role_since"),
            "reachable": s.probed and s.peer_failures == 0,
            "auth_problem": ex.peer_auth_problem,
        },
        "settings": cfg.model_dump(),
        "expected_failover_delay_s": round(expected_delay(mem), 3),
        "clock_skew_s": None if ex.skew_s is None else round(ex.skew_s, 4),
        "config_digest": a.config.digest(),
        "config_replicated": ex.settings.peer_digest == a.config.digest(),
        "witness": a.lease.status(),
    }
