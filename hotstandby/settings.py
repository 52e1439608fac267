"""One typed, validated model for every setting (SPEC section 2).

``ClusterSettings`` are the vendor's Hot Standby screen: replicated, changed through the API.
``NodeSettings`` are this node's own (identity, paths, secrets): read once from the environment.
Both are built by ``load_*`` functions, never at import time, so tests make their own.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

MIN_SECONDS = 0.05
NODE_IDS = ("server1", "server2")

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def is_valid_host(value: str) -> bool:
    """A literal IPv4/IPv6 address or an RFC 1123 host name."""
    try:
        ipaddress.ip_address(value.strip("[]"))
        return True
    except ValueError:
        # An all-numeric last label is never a name (RFC 3696 section 2): "10.0.0.256" is a mistyped
        # address, and resolvers read "123" or "1.2.3" as IPv4 shorthand for another host.
        return bool(_HOSTNAME.match(value)) and not value.rstrip(".").rsplit(".", 1)[-1].isdigit()


def split_host_port(value: str, *, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) into its parts; raises ValueError naming the problem."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        has_port, port_text = rest.startswith(":"), rest[1:]
        if rest and not has_port:
            raise ValueError(f"{value!r} is not a valid host")
    elif value.count(":") == 1:
        host, port_text = value.split(":")
        has_port = True
    else:
        host, port_text, has_port = value, "", False
    if not host or not is_valid_host(host):
        raise ValueError(f"{value!r} is not a valid host")
    if has_port and not port_text:
        raise ValueError(f"{value!r} has an invalid port (1..65535)")
    if not port_text:
        if default_port is None:
            raise ValueError(f"{value!r} needs a port (host:port)")
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r} has an invalid port (1..65535)")
    return host, int(port_text)


class ClusterSettings(BaseModel):
    """The replicated settings. Validation here is the only validation there is."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = True
    server1_address: str = Field(default="127.0.0.11")
    server2_address: str = Field(default="127.0.0.12")
    monitor_port: int = Field(default=8080, ge=1, le=65535)
    arbiter_port: int = Field(default=2011, ge=1, le=65535)
    vip_address: str = ""
    test_vip_destination: bool = False
    use_vip_for_urls: bool = False
    switch_on_application_error: bool = False
    auto_failback: bool = True
    heartbeat_timeout_s: float = Field(default=10.0, ge=MIN_SECONDS, le=3600)
    heartbeat_interval_s: float = Field(default=30.0, ge=MIN_SECONDS, le=3600)
    failures_to_switch: int = Field(default=5, ge=1, le=100)
    lan_probe_addresses: str = ""
    cti_restart_time: str = ""

    @field_validator("server1_address", "server2_address")
    @classmethod
    def _host(cls, v: str) -> str:
        v = v.strip()
        if not is_valid_host(v):
            raise ValueError("must be a valid host name or IP address")
        return v

    @field_validator("vip_address")
    @classmethod
    def _vip(cls, v: str) -> str:
        v = v.strip()
        if v:
            split_host_port(v, default_port=0)
        return v

    @field_validator("lan_probe_addresses")
    @classmethod
    def _lan(cls, v: str) -> str:
        items = [item.strip() for item in v.split(",") if item.strip()]
        for item in items:
            split_host_port(item)
        return ",".join(items)

    @field_validator("cti_restart_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        v = v.strip()
        if v and not _HHMM.match(v):
            raise ValueError("must be HH:MM (00:00..23:59) or empty")
        return v

    @model_validator(mode="after")
    def _cross(self) -> ClusterSettings:
        if self.heartbeat_timeout_s > self.heartbeat_interval_s:
            raise ValueError(
                f"heartbeat_timeout_s: must be <= heartbeat_interval_s ({self.heartbeat_interval_s:g})"
            )
        if self.server1_address.lower() == self.server2_address.lower():
            raise ValueError("server2_address: must differ from server1_address")
        return self

    # Derived values: one place, so status, CLI, console and HAProxy agree.
    @property
    def lan_probes(self) -> list[tuple[str, int]]:
        return [split_host_port(x) for x in self.lan_probe_addresses.split(",") if x]

    def address_of(self, node_id: str) -> str:
        return self.server1_address if node_id == "server1" else self.server2_address

    def detection_delay_s(self) -> float:
        """N·I + T: how long a dead ACTIVE goes unnoticed at worst (the vendor's formula)."""
        return self.failures_to_switch * self.heartbeat_interval_s + self.heartbeat_timeout_s


CLUSTER_FIELDS: tuple[str, ...] = tuple(ClusterSettings.model_fields)


def env_name(field: str) -> str:
    return "HS_" + field.upper()


class NodeSettings(BaseModel):
    """Settings that belong to this node and are never replicated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: Literal["server1", "server2"] = "server1"
    local_address: str = ""
    bind_host: str = "0.0.0.0"
    data_dir: Path = Path("/var/lib/hotstandby")
    peer_secret: str = Field(default="", repr=False)
    admin_token: str = Field(default="", repr=False)
    cti_command: str = ""
    cti_manager_url: str = ""
    cti_ports: int = Field(default=2, ge=0, le=10000)
    cti_devices: int = Field(default=2, ge=0, le=10000)
    # cold: CTI starts on promotion (R9). warm: it runs idle on both nodes and registers on promotion.
    cti_mode: Literal["cold", "warm"] = "cold"
    lb_runtime_api: str = ""  # HOST:PORT[,HOST:PORT]: HAProxy runtime APIs told of role changes; empty: off
    cluster_name: str = "hotstandby"
    witness_url: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    log_level: str = "INFO"
    notify_command: str = ""  # SPEC 13: run for every event of the node (hotstandby.hooks); empty: none
    notify_timeout_s: float = Field(default=10.0, gt=0, le=3600)  # one run of it, killed past this

    @field_validator("cluster_name")
    @classmethod
    def _cluster_name(cls, v: str) -> str:
        # It becomes a path segment of the witness key, /hotstandby/<cluster>/active.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", v):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-' (it names the witness key)")
        return v

    @field_validator("local_address")
    @classmethod
    def _local(cls, v: str) -> str:
        v = v.strip()
        if v and not is_valid_host(v):
            raise ValueError("must be a valid host name or IP address")
        return v

    @field_validator("witness_url")
    @classmethod
    def _witness(cls, v: str) -> str:
        """SPEC 12: ``http://host:2379[,http://host2:2379]``; empty means no witness."""
        items = [item.strip().rstrip("/") for item in v.split(",") if item.strip()]
        for item in items:
            scheme, sep, rest = item.partition("://")
            if scheme not in ("http", "https") or not sep:
                raise ValueError(f"{item!r}: each endpoint must be http://host:port or https://host:port")
            split_host_port(rest.rsplit("@", 1)[-1], default_port=2379)
        return ",".join(items)

    @field_validator("cti_mode", mode="before")
    @classmethod
    def _cti_mode(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("lb_runtime_api")
    @classmethod
    def _lb_runtime_api(cls, v: str) -> str:
        from hotstandby.lbruntime import parse_endpoints  # it reads host:port with split_host_port, above

        return ",".join(str(ep) for ep in parse_endpoints(v))

    @property
    def peer_id(self) -> str:
        return "server2" if self.node_id == "server1" else "server1"

    @property
    def rank(self) -> str:
        return "primary" if self.node_id == "server1" else "backup"

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "hotstandby.db"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


NODE_FIELDS: tuple[str, ...] = tuple(NodeSettings.model_fields)
SECRET_FIELDS = ("peer_secret", "admin_token")


class SettingsError(ValueError):
    """A setting was refused: ``str()`` is the one line that names it and the rule."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {rule}" for name, rule in errors))


def describe_errors(exc: ValidationError, name_of: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Pydantic's errors as (field, rule) pairs, the field renamed through ``name_of`` (env names)."""
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        loc = [str(p) for p in err.get("loc", ())]
        field = loc[0] if loc else ""
        if not field and ": " in msg:  # model-level rule: the message leads with the field
            field, msg = msg.split(": ", 1)
        if err.get("type") == "extra_forbidden":
            msg = "unknown setting"
        name = (name_of or {}).get(field, field) or "settings"
        out.append((name, msg))
    return out


def validate_cluster(values: Mapping[str, Any], *, env_names: bool = False) -> ClusterSettings:
    """Build ClusterSettings or raise SettingsError naming each bad field (or env variable)."""
    try:
        return ClusterSettings.model_validate(dict(values))
    except ValidationError as exc:
        names = {f: env_name(f) for f in CLUSTER_FIELDS} if env_names else None
        raise SettingsError(describe_errors(exc, names)) from None


def _env_value(env: Mapping[str, str], field: str) -> str | None:
    """``HS_X`` or, for any setting, the contents of the file named by ``HS_X_FILE``."""
    name = env_name(field)
    if name in env:
        return env[name]
    path = env.get(name + "_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise SettingsError([(name + "_FILE", f"cannot read {path}: {exc.strerror}")]) from None
    return None


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError([(name, "must be a boolean (true/false)")])


def cluster_from_env(env: Mapping[str, str] | None = None) -> ClusterSettings:
    """Bootstrap cluster settings: used only when the node's database holds none yet."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    for field, info in ClusterSettings.model_fields.items():
        value = _env_value(env, field)
        if value is None:
            continue
        raw[field] = _bool(env_name(field), value) if info.annotation is bool else value
    return validate_cluster(raw, env_names=True)


def node_from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> NodeSettings:
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    for field in NODE_FIELDS:
        value = _env_value(env, field)
        if value is not None:
            raw[field] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return NodeSettings.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc, {f: env_name(f) for f in NODE_FIELDS})) from None


def check_startable(node: NodeSettings, cluster: ClusterSettings) -> None:
    """Refuse to start an HA node that could not authenticate its peer (SPEC section 6)."""
    if cluster.enabled and not node.peer_secret.strip():
        raise SettingsError([("HS_PEER_SECRET", "must be set (non-empty) when hot standby is enabled")])
