"""The settings model (SPEC section 2): defaults, every validation rule, the environment, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotstandby.settings import (
    CLUSTER_FIELDS,
    ClusterSettings,
    NodeSettings,
    SettingsError,
    check_startable,
    cluster_from_env,
    env_name,
    is_valid_host,
    node_from_env,
    split_host_port,
    validate_cluster,
)

SPEC_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "monitor_port": 8080,
    "arbiter_port": 2011,
    "vip_address": "",
    "test_vip_destination": False,
    "use_vip_for_urls": False,
    "switch_on_application_error": False,
    "auto_failback": True,
    "heartbeat_timeout_s": 10,
    "heartbeat_interval_s": 30,
    "failures_to_switch": 5,
    "lan_probe_addresses": "",
    "cti_restart_time": "",
}


def test_cluster_defaults_match_the_spec() -> None:
    """Every default of SPEC section 2 (server addresses have none there) is the model's default."""
    defaults = ClusterSettings()
    assert {name: getattr(defaults, name) for name in SPEC_DEFAULTS} == SPEC_DEFAULTS
    assert set(CLUSTER_FIELDS) == set(SPEC_DEFAULTS) | {"server1_address", "server2_address"}


def test_env_names_follow_the_spec() -> None:
    """Each cluster setting's variable is ``HS_`` plus its name in capitals."""
    assert env_name("heartbeat_timeout_s") == "HS_HEARTBEAT_TIMEOUT_S"
    assert env_name("switch_on_application_error") == "HS_SWITCH_ON_APPLICATION_ERROR"


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"heartbeat_interval_s": 0.049, "heartbeat_timeout_s": 0.04}, "heartbeat_interval_s", "greater than or equal"),
        ({"heartbeat_timeout_s": 0.0}, "heartbeat_timeout_s", "greater than or equal"),
        ({"heartbeat_timeout_s": -1}, "heartbeat_timeout_s", "greater than or equal"),
        ({"heartbeat_interval_s": float("nan")}, "heartbeat_interval_s", ""),
        ({"heartbeat_interval_s": float("inf")}, "heartbeat_interval_s", ""),
        ({"heartbeat_interval_s": "fast"}, "heartbeat_interval_s", "number"),
        ({"heartbeat_timeout_s": 31}, "heartbeat_timeout_s", "<= heartbeat_interval_s"),
        ({"heartbeat_timeout_s": 1.0, "heartbeat_interval_s": 0.5}, "heartbeat_timeout_s", "<= heartbeat_interval_s"),
        ({"failures_to_switch": 0}, "failures_to_switch", "greater than or equal to 1"),
        ({"failures_to_switch": 101}, "failures_to_switch", "less than or equal to 100"),
        ({"failures_to_switch": 2.5}, "failures_to_switch", "integer"),
        ({"monitor_port": 0}, "monitor_port", ""),
        ({"arbiter_port": 65536}, "arbiter_port", ""),
        ({"server1_address": ""}, "server1_address", "valid host"),
        ({"server1_address": "bad host"}, "server1_address", "valid host"),
        ({"server2_address": "http://x"}, "server2_address", "valid host"),
        ({"server2_address": "-leading.dash"}, "server2_address", "valid host"),
        ({"server2_address": "under_score.example"}, "server2_address", "valid host"),
        ({"server2_address": "10.0.0.256"}, "server2_address", "valid host"),
        ({"server2_address": "1.2.3"}, "server2_address", "valid host"),
        ({"server2_address": "127.0.0.11"}, "server2_address", "must differ"),
        ({"server1_address": "NODE-A", "server2_address": "node-a"}, "server2_address", "must differ"),
        ({"vip_address": "bad host:80"}, "vip_address", "not a valid host"),
        ({"vip_address": "10.0.0.1:99999"}, "vip_address", "invalid port"),
        ({"vip_address": "10.0.0.1:"}, "vip_address", "invalid port"),
        ({"vip_address": "10.0.0.1:http"}, "vip_address", "invalid port"),
        ({"vip_address": "[2001:db8::10]:"}, "vip_address", "invalid port"),
        ({"vip_address": "[2001:db8::10]443"}, "vip_address", "not a valid host"),
        ({"lan_probe_addresses": "10.0.0.1"}, "lan_probe_addresses", "needs a port"),
        ({"lan_probe_addresses": "10.0.0.1:53,gw"}, "lan_probe_addresses", "needs a port"),
        ({"lan_probe_addresses": "10.0.0.1:0"}, "lan_probe_addresses", "invalid port"),
        ({"lan_probe_addresses": "not a host:80"}, "lan_probe_addresses", "not a valid host"),
        ({"cti_restart_time": "24:00"}, "cti_restart_time", "HH:MM"),
        ({"cti_restart_time": "3:00"}, "cti_restart_time", "HH:MM"),
        ({"cti_restart_time": "03:60"}, "cti_restart_time", "HH:MM"),
        ({"cti_restart_time": "noon"}, "cti_restart_time", "HH:MM"),
        ({"enabled": "maybe"}, "enabled", "bool"),
        ({"no_such_setting": 1}, "no_such_setting", "unknown setting"),
    ],
)
def test_each_rule_is_refused_naming_the_field(changes: dict[str, Any], field: str, rule: str) -> None:
    """A bad value raises SettingsError whose text names the field and the rule."""
    with pytest.raises(SettingsError) as info:
        validate_cluster(changes)
    rules = dict(info.value.errors)
    assert rule.lower() in rules[field].lower()
    assert f"{field}: {rules[field]}" in str(info.value)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"heartbeat_interval_s": 0.05, "heartbeat_timeout_s": 0.05},
        {"heartbeat_interval_s": 1, "heartbeat_timeout_s": 1, "failures_to_switch": 1},
        {"failures_to_switch": 100},
        {"server1_address": "10.0.0.1", "server2_address": "10.0.0.2"},
        {"server1_address": "cti-a.example.com", "server2_address": "cti-b.example.com."},
        {"server1_address": "fe80::1", "server2_address": "[fe80::2]"},
        {"server1_address": "localhost", "server2_address": "123abc"},
        {"vip_address": "10.0.0.10"},
        {"vip_address": "vip.example.com:8080"},
        {"vip_address": "[2001:db8::10]:443"},
        {"lan_probe_addresses": "10.0.0.254:53, lb.example.com:80 ,[2001:db8::1]:22"},
        {"cti_restart_time": "00:00"},
        {"cti_restart_time": "23:59"},
        {"enabled": "false", "auto_failback": 0},
    ],
)
def test_valid_values_are_accepted(changes: dict[str, Any]) -> None:
    """Values inside every rule build settings."""
    validate_cluster(changes)


def test_lan_probes_are_normalised() -> None:
    """The probe list is trimmed, empty items dropped, and parsed into (host, port) pairs."""
    s = validate_cluster({"lan_probe_addresses": " 10.0.0.254:53, ,lb:80,"})
    assert s.lan_probe_addresses == "10.0.0.254:53,lb:80"
    assert s.lan_probes == [("10.0.0.254", 53), ("lb", 80)]


def test_several_bad_fields_are_all_named() -> None:
    """Every bad field is reported in one error, not only the first."""
    with pytest.raises(SettingsError) as info:
        validate_cluster({"failures_to_switch": 0, "cti_restart_time": "x", "monitor_port": -1})
    assert {"failures_to_switch", "cti_restart_time", "monitor_port"} == {n for n, _ in info.value.errors}


def test_settings_are_frozen() -> None:
    """Settings cannot be changed in place: a change goes through validation again."""
    with pytest.raises(ValueError):
        ClusterSettings().failures_to_switch = 3  # type: ignore[misc]


@given(st.floats(0.05, 3600), st.floats(0.05, 3600))
def test_timeout_never_above_interval(t: float, i: float) -> None:
    """Any T and I in range are accepted exactly when T <= I."""
    try:
        s = validate_cluster({"heartbeat_timeout_s": t, "heartbeat_interval_s": i})
    except SettingsError:
        assert t > i
    else:
        assert s.heartbeat_timeout_s <= s.heartbeat_interval_s


@pytest.mark.parametrize(
    ("value", "default_port", "expected"),
    [
        ("h:1", None, ("h", 1)),
        ("10.0.0.1:65535", None, ("10.0.0.1", 65535)),
        ("[::1]:80", None, ("::1", 80)),
        ("h", 80, ("h", 80)),
        ("[::1]", 443, ("::1", 443)),
        (" h:2 ", None, ("h", 2)),
    ],
)
def test_split_host_port(value: str, default_port: int | None, expected: tuple[str, int]) -> None:
    """``host:port`` and ``[v6]:port`` split; a missing port takes the default when there is one."""
    assert expected == split_host_port(value, default_port=default_port)


@pytest.mark.parametrize(
    ("value", "valid"),
    [("10.0.0.1", True), ("::1", True), ("[::1]", True), ("a.b-c.d", True), ("x" * 63, True),
     ("x" * 64, False), ("", False), ("a..b", False), ("a b", False), ("999.1.1.1", False),
     ("10.0.0.1.5", False), ("host.123", False), ("123", False)],
)
def test_is_valid_host(value: str, valid: bool) -> None:
    """IP literals and RFC 1123 names are hosts; malformed names and out-of-range dotted numbers are not."""
    assert valid == is_valid_host(value)


# -- environment -------------------------------------------------------------------------------

BASE_ENV = {"HS_SERVER1_ADDRESS": "10.0.0.1", "HS_SERVER2_ADDRESS": "10.0.0.2"}


def test_cluster_from_env_reads_every_variable() -> None:
    """Each ``HS_*`` variable sets its setting, strings converted to the setting's type."""
    env = {**BASE_ENV, "HS_ENABLED": "no", "HS_MONITOR_PORT": "18080", "HS_ARBITER_PORT": "12011",
           "HS_VIP_ADDRESS": "10.0.0.10:8080", "HS_TEST_VIP_DESTINATION": "yes", "HS_USE_VIP_FOR_URLS": "1",
           "HS_SWITCH_ON_APPLICATION_ERROR": "on", "HS_AUTO_FAILBACK": "FALSE", "HS_HEARTBEAT_TIMEOUT_S": "0.5",
           "HS_HEARTBEAT_INTERVAL_S": "1", "HS_FAILURES_TO_SWITCH": "3",
           "HS_LAN_PROBE_ADDRESSES": "10.0.0.254:53", "HS_CTI_RESTART_TIME": "03:30"}
    s = cluster_from_env(env)
    assert s.model_dump() == {
        "enabled": False, "server1_address": "10.0.0.1", "server2_address": "10.0.0.2", "monitor_port": 18080,
        "arbiter_port": 12011, "vip_address": "10.0.0.10:8080", "test_vip_destination": True,
        "use_vip_for_urls": True, "switch_on_application_error": True, "auto_failback": False,
        "heartbeat_timeout_s": 0.5, "heartbeat_interval_s": 1.0, "failures_to_switch": 3,
        "lan_probe_addresses": "10.0.0.254:53", "cti_restart_time": "03:30",
    }


def test_cluster_from_env_ignores_foreign_variables() -> None:
    """Variables that are not settings (node-local, other programs') do not disturb the cluster settings."""
    s = cluster_from_env({**BASE_ENV, "HS_NODE_ID": "server2", "PATH": "/bin", "HS_PEER_SECRET": "x"})
    assert ClusterSettings(server1_address="10.0.0.1", server2_address="10.0.0.2") == s


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("true", True), ("Yes", True), (" ON ", True),
                                            ("0", False), ("false", False), ("NO", False), ("off", False),
                                            ("", False)])
def test_booleans_from_env(raw: str, value: bool) -> None:
    """The usual spellings of true and false are understood, in any case."""
    assert value is cluster_from_env({**BASE_ENV, "HS_AUTO_FAILBACK": raw}).auto_failback


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"HS_HEARTBEAT_TIMEOUT_S": "60"}, "HS_HEARTBEAT_TIMEOUT_S"),
        ({"HS_HEARTBEAT_INTERVAL_S": "0.01"}, "HS_HEARTBEAT_INTERVAL_S"),
        ({"HS_FAILURES_TO_SWITCH": "many"}, "HS_FAILURES_TO_SWITCH"),
        ({"HS_ENABLED": "perhaps"}, "HS_ENABLED"),
        ({"HS_SERVER2_ADDRESS": "10.0.0.1"}, "HS_SERVER2_ADDRESS"),
        ({"HS_VIP_ADDRESS": "::bad::"}, "HS_VIP_ADDRESS"),
        ({"HS_CTI_RESTART_TIME": "25:00"}, "HS_CTI_RESTART_TIME"),
        ({"HS_MONITOR_PORT": "http"}, "HS_MONITOR_PORT"),
    ],
)
def test_env_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    """A bad environment value is refused with the variable's own name, as the operator typed it."""
    with pytest.raises(SettingsError) as info:
        cluster_from_env({**BASE_ENV, **env})
    assert str(info.value).startswith(f"{variable}: ")


def test_file_variants_are_read(tmp_path: Path) -> None:
    """``HS_X_FILE`` supplies ``HS_X`` from a file (trimmed); ``HS_X`` itself wins when both are set."""
    secret, token, interval = tmp_path / "secret", tmp_path / "token", tmp_path / "interval"
    secret.write_text("peer-secret\n")
    token.write_text("  admin-token  ")
    interval.write_text("20\n")
    node = node_from_env({"HS_PEER_SECRET_FILE": str(secret), "HS_ADMIN_TOKEN_FILE": str(token)})
    assert (node.peer_secret, node.admin_token) == ("peer-secret", "admin-token")
    assert node_from_env({"HS_PEER_SECRET": "direct", "HS_PEER_SECRET_FILE": str(secret)}).peer_secret == "direct"
    cluster = cluster_from_env({**BASE_ENV, "HS_HEARTBEAT_INTERVAL_S_FILE": str(interval)})
    assert cluster.heartbeat_interval_s == 20.0


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_unreadable_file_names_the_variable(tmp_path: Path, make: str) -> None:
    """A ``*_FILE`` that cannot be read is refused naming the variable, not the secret."""
    path = tmp_path / "secret"
    if make == "directory":
        path.mkdir()
    with pytest.raises(SettingsError) as info:
        node_from_env({"HS_PEER_SECRET_FILE": str(path)})
    assert str(info.value).startswith("HS_PEER_SECRET_FILE: cannot read")


def test_node_defaults() -> None:
    """With an empty environment the node is server1 with the documented defaults."""
    node = node_from_env({})
    assert NodeSettings() == node
    assert (node.node_id, node.peer_id, node.rank) == ("server1", "server2", "primary")
    assert ("0.0.0.0", Path("/var/lib/hotstandby"), "hotstandby", "", "", "") == (
        node.bind_host, node.data_dir, node.cluster_name, node.witness_url, node.peer_secret, node.cti_manager_url)
    assert Path("/var/lib/hotstandby/hotstandby.db") == node.db_path
    assert Path("/var/lib/hotstandby/logs") == node.log_dir
    assert not node.tls


def test_node_from_env_and_overrides(tmp_path: Path) -> None:
    """``HS_*`` node variables are read; explicit overrides win and None overrides are ignored."""
    env = {"HS_NODE_ID": "server2", "HS_DATA_DIR": str(tmp_path), "HS_LOCAL_ADDRESS": "10.0.0.2",
           "HS_CLUSTER_NAME": "pbx", "HS_BIND_HOST": "10.0.0.2"}
    node = node_from_env(env, bind_host="127.0.0.1", local_address=None)
    assert ("server2", tmp_path, "10.0.0.2", "pbx", "127.0.0.1", "backup", "server1") == (
        node.node_id, node.data_dir, node.local_address, node.cluster_name, node.bind_host, node.rank, node.peer_id)


@pytest.mark.parametrize(
    ("env", "variable"),
    [({"HS_NODE_ID": "server3"}, "HS_NODE_ID"), ({"HS_LOCAL_ADDRESS": "not an address"}, "HS_LOCAL_ADDRESS"),
     ({"HS_CTI_PORTS": "-1"}, "HS_CTI_PORTS")],
)
def test_node_env_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    """Bad node variables are refused naming the variable."""
    with pytest.raises(SettingsError) as info:
        node_from_env(env)
    assert str(info.value).startswith(f"{variable}: ")


@pytest.mark.parametrize(
    ("secret", "enabled", "startable"),
    [("", True, False), ("   ", True, False), ("s", True, True), ("", False, True), ("s", False, True)],
)
def test_check_startable(secret: str, enabled: bool, startable: bool) -> None:
    """An enabled node needs a non-empty peer secret; a standalone node does not."""
    node = NodeSettings(peer_secret=secret)
    cluster = ClusterSettings(enabled=enabled)
    if startable:
        check_startable(node, cluster)
    else:
        with pytest.raises(SettingsError, match="HS_PEER_SECRET: must be set"):
            check_startable(node, cluster)


def test_secrets_never_in_repr_or_errors() -> None:
    """``repr``/``str`` of node settings leave out the peer secret and the admin token, and errors never echo them."""
    node = NodeSettings(peer_secret="peer-XYZZY", admin_token="admin-PLUGH")
    for text in (repr(node), str(node)):
        assert "XYZZY" not in text and "PLUGH" not in text
    with pytest.raises(SettingsError) as info:
        node_from_env({"HS_PEER_SECRET": "peer-XYZZY", "HS_NODE_ID": "nobody"})
    assert "XYZZY" not in str(info.value)


@pytest.mark.parametrize(("raw", "expected"), [
    ("", ""), ("http://127.0.0.1:2379", "http://127.0.0.1:2379"),
    (" http://10.0.0.5:2379/ , https://etcd2.lan:2379", "http://10.0.0.5:2379,https://etcd2.lan:2379"),
])
def test_witness_url_takes_a_comma_separated_endpoint_list(raw: str, expected: str) -> None:
    """HS_WITNESS_URL (SPEC 12): http(s) endpoints, comma-separated, normalised; empty means no witness."""
    assert expected == node_from_env({"HS_WITNESS_URL": raw}).witness_url


@pytest.mark.parametrize(("env", "variable"), [
    ({"HS_WITNESS_URL": "127.0.0.1:2379"}, "HS_WITNESS_URL"), ({"HS_WITNESS_URL": "ftp://h:1"}, "HS_WITNESS_URL"),
    ({"HS_WITNESS_URL": "http://bad host:2379"}, "HS_WITNESS_URL"),
    ({"HS_CLUSTER_NAME": "a/b"}, "HS_CLUSTER_NAME"), ({"HS_CLUSTER_NAME": ""}, "HS_CLUSTER_NAME"),
])
def test_bad_witness_settings_are_refused_naming_the_variable(env: dict[str, str], variable: str) -> None:
    """A witness URL that is not http(s)://host:port, or a cluster name that cannot be a key segment, is refused."""
    with pytest.raises(SettingsError) as info:
        node_from_env(env)
    assert str(info.value).startswith(f"{variable}: ")
