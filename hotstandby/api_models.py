"""The documents of both services' HTTP APIs (SPEC section 3): what each call takes and what each answer holds.

The services declare them as request and response models, so ``/openapi.json`` describes every answer and a
generated client gets typed objects; the command line and the tests may use them too. They describe the JSON
the code sends, they do not reshape it: field names and values are the SPEC's, answers are serialized with
``exclude_unset`` (a field the code leaves out stays out, none is added), and a public answer refuses a field
it does not declare (``extra="forbid"``), so an undocumented field shows up as a failing test, not as drift.
The node-to-node answers accept extra fields: a newer peer may say more, and the pair must keep talking.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from hotstandby.hlc import Timestamp
from hotstandby.model import Cause, Rank, Role
from hotstandby.settings import ClusterSettings

NodeId = Literal["server1", "server2"]
StatusWords = Literal["Active (Primary)", "Standby (Backup)", "Error", "Unknown"]
CtiStateWord = Literal["stopped", "starting", "running", "failed"]

# Epochs stay JSON-safe integers (I-JSON: up to 2**53 - 1); a bound near 2**62 is not even
# representable as a double, so validators in other languages compare it wrongly.
MAX_EPOCH = 2**53 - 1
HLC_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#\d{1,18}$"  # hotstandby.hlc.Timestamp's text


class Answer(BaseModel):
    """A public answer: every field declared."""

    model_config = ConfigDict(extra="forbid")


class PeerAnswer(BaseModel):
    """A node-to-node answer: the declared fields, and whatever a newer peer adds."""

    model_config = ConfigDict(extra="allow")


def _hlc(text: str) -> str:
    """The pattern has the shape; a calendar date (no month 13, no 30 February) is checked here."""
    Timestamp.parse(text)
    return text


# -- requests --------------------------------------------------------------------------------------------------
class SwitchRequest(BaseModel):
    """``POST /switch``: make ``target`` ACTIVE (R7); ``force`` when the current ACTIVE is unreachable."""

    model_config = ConfigDict(extra="forbid")
    target: NodeId
    force: StrictBool = False  # JSON true/false only: 0 or "yes" is a 422, not a guess


class MaintenanceRequest(BaseModel):
    """``POST /maintenance``: pause (or resume) automatic switching on both nodes (R11)."""

    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool


class RoleCommand(BaseModel):
    """``POST /peer/role``: the peer tells this node to take a role."""

    role: Role
    epoch: int = Field(ge=0, le=MAX_EPOCH)
    cause: Cause = Cause.PEER
    reason: str = Field(default="", max_length=500)


class MaintenanceStamp(BaseModel):
    """The maintenance flag with the hybrid clock time and node that last set it (replicated like a setting)."""

    value: bool
    at: str = Field(pattern=HLC_PATTERN)
    origin: str = Field(max_length=64)

    @field_validator("at")
    @classmethod
    def _calendar(cls, v: str) -> str:
        return _hlc(v)


class Heartbeat(BaseModel):
    """``POST /peer/heartbeat``: what the calling node says about itself (its view); more fields may follow."""

    node_id: NodeId
    role: Role
    epoch: int = Field(ge=0, le=MAX_EPOCH)
    hlc: str = Field(pattern=HLC_PATTERN)
    digest: str = Field(max_length=128)
    maintenance: MaintenanceStamp
    model_config = ConfigDict(extra="allow")

    @field_validator("hlc")
    @classmethod
    def _calendar(cls, v: str) -> str:
        return _hlc(v)


def settings_patch_schema() -> dict[str, Any]:
    """``PUT /config``'s body: any non-empty subset of the cluster settings, each with its own rules (SPEC 2;
    the rules between fields, T <= I and two different addresses, are checked on the whole result)."""
    fields = ClusterSettings.model_json_schema()["properties"]
    return {
        "title": "SettingsPatch", "type": "object", "minProperties": 1, "additionalProperties": False,
        "description": "A partial update: only the settings to change, by name.",
        "properties": {name: {k: v for k, v in spec.items() if k not in ("default", "title")}
                       for name, spec in fields.items()},
    }


# -- health --------------------------------------------------------------------------------------------------
class Health(Answer):
    """``GET /healthz``: ``ok`` while the process serves; the arbiter adds why it is unhealthy (503)."""

    status: Literal["ok", "unhealthy"]
    detail: str | None = None


# -- settings ------------------------------------------------------------------------------------------------
_UPDATED_AT = Field(description="hybrid logical clock time of the last change",
                    examples=["2026-11-25T14:48:27.734Z#0"])
_ORIGIN = Field(description="the node that made the last change")


class StampedBool(Answer):
    value: bool
    updated_at: str = _UPDATED_AT
    origin: str = _ORIGIN


class StampedInt(Answer):
    value: int
    updated_at: str = _UPDATED_AT
    origin: str = _ORIGIN


class StampedFloat(Answer):
    value: float
    updated_at: str = _UPDATED_AT
    origin: str = _ORIGIN


class StampedStr(Answer):
    value: str
    updated_at: str = _UPDATED_AT
    origin: str = _ORIGIN


class StampedSettings(Answer):
    """Every cluster setting (SPEC section 2) with its ``value``, ``updated_at`` and ``origin``."""

    enabled: StampedBool
    server1_address: StampedStr
    server2_address: StampedStr
    monitor_port: StampedInt
    arbiter_port: StampedInt
    vip_address: StampedStr
    test_vip_destination: StampedBool
    use_vip_for_urls: StampedBool
    switch_on_application_error: StampedBool
    auto_failback: StampedBool
    heartbeat_timeout_s: StampedFloat
    heartbeat_interval_s: StampedFloat
    failures_to_switch: StampedInt
    lan_probe_addresses: StampedStr
    cti_restart_time: StampedStr


class ConfigDocument(Answer):
    """``GET /config``: the cluster settings and their digest (equal on both nodes once replicated)."""

    settings: StampedSettings
    digest: str


class ConfigChange(ConfigDocument):
    """``PUT /config``: the names whose value changed, whether the peer has them already, and the settings."""

    changed: list[str]
    replicated: bool


class StampedValue(PeerAnswer):
    value: bool | int | float | str
    updated_at: str
    origin: str


class PeerConfig(PeerAnswer):
    """``GET /peer/config``: the settings (none when the caller's digest is already ours) and our digest."""

    settings: dict[str, StampedValue]
    digest: str


# -- CTI -----------------------------------------------------------------------------------------------------
class CtiState(Answer):
    """``GET /cti`` (and the CTI commands' answer): the supervised CTI server (SPEC 3, R9)."""

    state: CtiStateWord
    pid: int | None
    restarts: int = Field(description="watchdog, daily and manual restarts (not promotions)")
    ports_registered: int
    devices_registered: int
    last_error: str | None
    held: bool = Field(description="stopped by an operator (/cti/stop) until /cti/start or the next promotion")
    mode: Literal["warm"] | None = Field(default=None, description="HS_CTI_MODE=warm only (absent when cold)")
    idle: bool | None = Field(default=None, description="warm mode: the process runs idle and unregistered")


class CtiSnapshot(Answer):
    """The CTI server as the arbiter sees it in ``/status``: the supervisor's snapshot when the monitor serves in
    the same process, else the monitor's last ``/cti`` answer (``unknown`` before the first one)."""

    state: CtiStateWord | Literal["unknown"]
    pid: int | None = None
    restarts: int | None = None
    ports_registered: int | None = None
    devices_registered: int | None = None
    last_error: str | None = None
    desired: Literal["running", "stopped", "idle"] | None = None
    epoch: int | None = None
    held: bool | None = None
    mode: Literal["warm"] | None = Field(default=None, description="HS_CTI_MODE=warm only (absent when cold)")
    idle: bool | None = Field(default=None, description="warm mode: the process runs idle and unregistered")


# -- status --------------------------------------------------------------------------------------------------
class ProbeChannel(Answer):
    ok: bool | None = Field(description="null before the first probe")
    seconds: float | None
    detail: str


class ExchangeChannel(Answer):
    ok: bool | None = Field(description="null before the first exchange")
    consecutive_failures: int
    by: Literal["asking", "asked"] | None = Field(
        default=None, description="asking: this node sent the tick's exchange; asked: the peer's ask was heard")
    protocol: int | None = Field(default=None, description="the exchange protocol spoken with the peer (1 or 2)")


class Channels(Answer):
    """The two ways a node hears from its peer each tick: the monitor probe (decides, R2) and the exchange."""

    probe: ProbeChannel
    exchange: ExchangeChannel


class _Node(Answer):
    node_id: NodeId
    address: str
    rank: Rank
    role: Role | None = Field(description="null when unknown (a peer not heard from yet)")
    status: StatusWords
    epoch: int | None
    role_since: str | None = Field(description="ISO 8601 time of the last role change")


class LocalNode(_Node):
    """This node: its role and what it observes."""

    role: Role
    epoch: int
    cause: Cause = Field(description="why this node holds its role")
    consecutive_failures: int = Field(description="consecutive failed probes of the peer")
    consecutive_successes: int
    lan_ok: bool
    lan_check: Literal["on", "off"] = Field(description="off when no LAN probe address is set")
    cti: CtiSnapshot
    maintenance: bool
    last_decision: str = Field(description="the last tick's decision, in one sentence")
    channels: Channels
    healthy: bool = Field(description="what /healthz says")
    problem: str | None = Field(description="why this node cannot persist or authenticate, if it cannot")


class PeerNode(_Node):
    """The peer, as this node last heard from it (``role`` is what the peer last reported)."""

    reachable: bool = Field(description="probed, and the last probe succeeded")
    auth_problem: str | None


class WitnessStatus(Answer):
    """SPEC 12: the etcd witness as this node sees it."""

    url: str
    reachable: bool
    holder: str | None = Field(description="the node the key names, or null")
    lease_ttl_s: float | None = Field(description="L, as etcd granted it")
    holds: bool = Field(description="this node holds the key on its live lease")
    renewal_age_s: float | None
    detail: str


class Status(Answer):
    """``GET /status``: both servers as on the vendor's screen, the settings and the expected failover delay."""

    local: LocalNode
    peer: PeerNode
    settings: ClusterSettings
    expected_failover_delay_s: float = Field(description="N·I + T + CTI startup (the vendor's formula)")
    clock_skew_s: float | None = Field(description="the peer's clock minus ours, from the last exchange")
    config_digest: str
    config_replicated: bool = Field(description="the peer holds the same settings digest")
    witness: WitnessStatus | None = Field(description="null when no witness is configured (HS_WITNESS_URL)")


# -- commands ------------------------------------------------------------------------------------------------
class SwitchAnswer(Answer):
    """``POST /switch``: the target is ACTIVE; the status after the switch."""

    target: NodeId
    active: NodeId
    epoch: int
    status: Status


class MaintenanceAnswer(Answer):
    """``POST /maintenance``: the new state, and whether the peer already has it."""

    maintenance: bool
    replicated: bool


class LogEntry(Answer):
    """One line of the fault-tolerant log, parsed (``GET /logs?format=json``)."""

    at: str = Field(description="local time, YYYY-MM-DDTHH:MM:SS.mmm")
    component: Literal["Arbiter", "Monitor", "CTI"]
    message: str


LogDays = list[str]



class HistoryItem(Answer):
    """One role change of this node (``GET /history``, SPEC 13), as the store keeps it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: int = Field(description="orders the history; `before` in the next page's request")
    at: str = Field(description="ISO 8601, UTC")
    node_id: str
    from_: str = Field(alias="from", description="the role before")
    to: str = Field(description="the role after")
    rule: str | None = Field(description="R1..R12, or null")
    cause: str
    epoch: int
    asked_by: str | None = Field(description="who asked (an operator, the peer); null: the node decided itself")
    reason: str = Field(description="the decision's sentence, as in the fault-tolerant log")


class ExplainedDecision(Answer):
    """What the pure core decides on one tick, and why."""

    reason: str
    rule: str | None
    role: Role
    epoch: int
    cause: Cause
    actions: list[str]
    switched: bool


class ExplainedTick(ExplainedDecision):
    tick: int = Field(description="1 is the next tick")
    after_s: float = Field(description="seconds from now, at one tick every I")


class ExplainedScenario(Answer):
    name: Literal["peer-dead", "lan-lost", "vip-to", "switch", "stop"]
    target: NodeId | None
    assumes: str = Field(description="what is supposed, in words")
    outcome: str = Field(description="what would happen, in one sentence")
    ticks: list[ExplainedTick] = Field(description="peer-dead, lan-lost, vip-to: the core's ticks, one every I")
    steps: list[str] = Field(description="switch, stop: the core's plan, step by step in words")


class Explanation(Answer):
    """``GET /explain``: the next tick's decision from the last observation, and with a scenario what follows."""

    node_id: NodeId
    rank: Rank
    role: Role
    epoch: int
    cause: Cause
    maintenance: bool
    peer_failures: int
    failures_to_switch: int
    observed_at: str | None = Field(description="when the last observation was made (ISO 8601, UTC)")
    observed: dict[str, Any] | None = Field(description="the last tick's observation, as the core saw it")
    observed_words: str | None
    next_tick: ExplainedDecision | None
    scenario: ExplainedScenario | None

# -- node-to-node --------------------------------------------------------------------------------------------
class Vouch(PeerAnswer):
    serves: bool
    app_ok: bool


class HeartbeatAnswer(PeerAnswer):
    """``POST /peer/heartbeat``'s answer: what the answering node says about itself, and its clock readings."""

    node_id: NodeId
    role: Role
    epoch: int
    cause: Cause | None = None
    rank: Rank | None = None
    lan_ok: bool
    can_be_active: bool
    maintenance: MaintenanceStamp
    digest: str
    hlc: str
    role_since: str | None = None
    address: str | None = None
    vouch: Vouch | None = None
    t2: float = Field(description="wall clock when the request arrived")
    t3: float = Field(description="wall clock when the answer left")


class RoleAnswer(PeerAnswer):
    """``POST /peer/role``: the role this node now holds."""

    node_id: NodeId
    role: Role
    epoch: int


class Whoami(Answer):
    """``GET /whoami`` on the monitor: which node answered (asked through the VIP, it says where the LB routes)."""

    node_id: NodeId
    address: str
