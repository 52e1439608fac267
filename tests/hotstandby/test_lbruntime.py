"""What the arbiter says to HAProxy's runtime API, and how it reads the answers (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotstandby import lbruntime
from hotstandby.lbruntime import Endpoint, parse_endpoints
from hotstandby.model import Action, Cause, Decision, NodeState, Role
from hotstandby.settings import SettingsError, node_from_env


def test_endpoints_are_host_port_pairs_in_order() -> None:
    """A comma-separated list, spaces and empty items ignored, IPv6 bracketed; empty means none."""
    assert parse_endpoints(" 10.0.0.5:9999, lb2.example:9999,[fd00::7]:80 ,") == (
        Endpoint("10.0.0.5", 9999), Endpoint("lb2.example", 9999), Endpoint("fd00::7", 80))
    assert parse_endpoints("") == ()
    assert str(Endpoint("fd00::7", 80)) == "[fd00::7]:80"


@pytest.mark.parametrize(("value", "words"), [
    ("10.0.0.5", "needs a port"),
    ("10.0.0.5:0", "invalid port"),
    ("10.0.0.5:99999", "invalid port"),
    ("not a host:1", "not a valid host"),
    ("10.0.0.5:9999,10.0.0.5:9999", "listed twice"),
])
def test_a_bad_endpoint_is_refused_naming_it(value: str, words: str) -> None:
    """Each refusal quotes the entry and says what is wrong with it."""
    with pytest.raises(ValueError, match=words) as info:
        parse_endpoints(value)
    assert repr(value.split(",")[0]) in str(info.value)


def test_the_node_setting_is_validated_and_normalised() -> None:
    """HS_LB_RUNTIME_API is checked at start (the error names the variable) and stored normalised."""
    assert node_from_env({"HS_LB_RUNTIME_API": " 10.0.0.5:9999 ,[::1]:80"}).lb_runtime_api == "10.0.0.5:9999,[::1]:80"
    assert node_from_env({}).lb_runtime_api == ""
    with pytest.raises(SettingsError, match=r"HS_LB_RUNTIME_API: .*'10\.0\.0\.5'.*needs a port"):
        node_from_env({"HS_LB_RUNTIME_API": "10.0.0.5"})


def test_the_cti_mode_setting_is_cold_or_warm() -> None:
    """HS_CTI_MODE: cold by default, warm in any case; anything else is refused naming the variable."""
    assert node_from_env({}).cti_mode == "cold"
    assert node_from_env({"HS_CTI_MODE": " WARM "}).cti_mode == "warm"
    with pytest.raises(SettingsError, match="HS_CTI_MODE"):
        node_from_env({"HS_CTI_MODE": "hot"})


def test_the_socket_line_opens_the_api_at_admin_level() -> None:
    """One HOST:PORT becomes HAProxy's `stats socket` on TCP, IPv4 or IPv6."""
    assert lbruntime.socket_line("10.0.0.5:9999") == "stats socket ipv4@10.0.0.5:9999 level admin"
    assert lbruntime.socket_line("[fd00::5]:9999") == "stats socket ipv6@[fd00::5]:9999 level admin"
    with pytest.raises(ValueError, match="runtime_api: must be one HOST:PORT"):
        lbruntime.socket_line("10.0.0.5:1,10.0.0.6:1")
    with pytest.raises(ValueError, match=r"runtime_api: .*needs a port"):
        lbruntime.socket_line("10.0.0.5")


def test_what_a_role_change_says() -> None:
    """Promotion: ready, up, the peer down. Demotion: down, its sessions cut, back to the checks. Never maint."""
    assert lbruntime.promoted("server2", "server1") == [
        "set server hotstandby/server2 state ready", "set server hotstandby/server2 health up",
        "set server hotstandby/server1 health down"]
    assert lbruntime.draining("server1") == ["set server hotstandby/server1 state drain"]
    assert lbruntime.demoted("server1") == [
        "set server hotstandby/server1 health down", "shutdown sessions server hotstandby/server1",
        "set server hotstandby/server1 state ready"]
    said = lbruntime.promoted("server1", "server2") + lbruntime.demoted("server1") + lbruntime.draining("server1")
    assert not any("maint" in c for c in said)


def test_a_batch_is_one_line_and_refuses_a_command_that_would_split_it() -> None:
    """Commands go on one line separated by '; '; one holding ';' or a newline is refused."""
    assert lbruntime.batch(["show info", "show stat"]) == b"show info; show stat\n"
    with pytest.raises(ValueError):
        lbruntime.batch(["set server a/b state ready; shutdown sessions server a/c"])


@given(st.lists(st.sampled_from(["", "\n", " \n"]), max_size=5))
def test_blank_answers_mean_success(parts: list[str]) -> None:
    """`set` and `shutdown` answer nothing when they succeed: any run of blank lines is success."""
    assert lbruntime.problem("".join(parts)) is None


def test_an_error_answer_is_returned_in_haproxy_words() -> None:
    """HAProxy's refusal comes back as one line of its own words."""
    assert lbruntime.problem("\nNo such server.\n\nPermission denied\n") == "No such server. Permission denied"


STAT = ("# pxname,svname,qcur,qmax,scur,smax,status\n"
        "hotstandby,server1,0,0,3,5,DRAIN\n"
        "hotstandby,server2,0,0,0,1,DOWN\n\n")


def test_sessions_are_read_from_show_stat() -> None:
    """scur of the named server; None when the server or the CSV header is absent."""
    assert lbruntime.sessions() == "show stat hotstandby 4 -1"
    assert lbruntime.current_sessions(STAT, "server1") == 3
    assert lbruntime.current_sessions(STAT, "server2") == 0
    assert lbruntime.current_sessions(STAT, "server3") is None
    assert lbruntime.current_sessions("No such proxy.\n", "server1") is None


@pytest.mark.parametrize(("cause", "actions", "planned"), [
    (Cause.MANUAL, (Action.STOP_CTI, Action.PROMOTE_PEER), True),  # R7 on the ACTIVE's side
    (Cause.MANUAL, (Action.STOP_CTI,), True),  # R7 asked by the target (its STANDBY command)
    (Cause.SHUTDOWN, (Action.STOP_CTI,), True),  # R10 with no healthy peer
    (Cause.FAILBACK, (Action.STOP_CTI, Action.PROMOTE_PEER), True),  # R3
    (Cause.LAN_LOST, (Action.STOP_CTI, Action.PROMOTE_PEER), True),  # a handover (disk full)
    (Cause.FAILOVER, (Action.STOP_CTI,), False),  # R1's command to a peer it thought dead
    (Cause.DUAL_ACTIVE, (Action.STOP_CTI,), False),  # R4
    (Cause.LAN_LOST, (Action.STOP_CTI,), False),  # R5
    (Cause.WITNESS, (Action.STOP_CTI,), False),  # R12
])
def test_a_planned_demotion_is_one_made_on_purpose(cause: Cause, actions: tuple[Action, ...], planned: bool) -> None:
    """Only an ACTIVE stepping down on purpose drains first; one stepping down because something failed does not."""
    active = NodeState(node_id="server1", role=Role.ACTIVE, epoch=3, cause=Cause.NO_ACTIVE)
    down = Decision(active.evolve(role=Role.STANDBY, cause=cause), "SWITCH THIS SERVER TO BACKUP", actions)
    assert lbruntime.planned_demotion(active, down) is planned
    standby = active.evolve(role=Role.STANDBY)
    assert lbruntime.planned_demotion(standby, Decision(standby, "no action")) is False


def test_the_drain_bound_is_half_an_interval_within_a_quarter_and_half_a_second_and_half_of_t() -> None:
    """I/2 clamped to [0.25, 0.5] s, never above T/2: short requests end long before, R7's peer command
    (answered within T) and R10's 2 s are never at risk."""
    assert [lbruntime.drain_bound_s(i, i) for i in (0.6, 1, 30)] == [0.3, 0.5, 0.5]
    assert [lbruntime.drain_bound_s(i, t) for i, t in ((0.1, 0.1), (0.2, 0.2), (30, 0.2))] == [0.05, 0.1, 0.1]
