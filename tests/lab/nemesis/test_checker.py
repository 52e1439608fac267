"""The checker on hand-made histories: each rule passes what the SPEC allows and fails what it does not.

Profile of every story: I = T = 0.5 s, N = 3, margin 2 s; so R1 2.5 s (4.5 with the margin), R3 2.0 s (4.0),
R4 3.5 s (5.5), R5 2.5 s (4.5), R7 0.5 s (2.5), R9 0.5 s (2.5), R10 2 s (4.0) and 5 s (7.0).
"""

from __future__ import annotations

from lab.nemesis.checker import Verdict, check
from lab.nemesis.faults import Kind
from lab.nemesis.history import Life, Registration, VipAnswer, Write
from lab.nemesis.world import World
from tests.lab.nemesis.builder import Story, stamp, steady_pair

S1S2 = (("server1", "server2"),)


def rule(story: Story, name: str) -> tuple[int, list[str]]:
    """(how often the rule applied, its violations' sentences)."""
    v: Verdict = check(story.history())
    r = v.results[name]
    return r.applied, [x.what for x in r.violations]


def failover_story(active_at: float, end: float = 60.0) -> Story:
    """server1 ACTIVE, killed at 10 (restarted at 40), server2 ACTIVE from ``active_at``."""
    s = Story(end=end).roles("server1", (0, "ACTIVE"), (10, None), (41, "STANDBY"))
    s.roles("server2", (0, "STANDBY"), (active_at, "ACTIVE", "failover"))
    s.fault(Kind.KILL, 10, 40, node="server1")
    return s


# -- split brain ---------------------------------------------------------------------------------------
def cut_story(s2_holds_until: float, witness: bool = False) -> Story:
    """The pair cut from 10 to 20; server2 promotes at 13 and holds CTI until ``s2_holds_until``."""
    s = Story(witness=witness).roles("server1", (0, "ACTIVE"))
    s.roles("server2", (0, "STANDBY"), (13, "ACTIVE", "failover"), (s2_holds_until, "STANDBY", "dual_active"))
    s.fault(Kind.PARTITION, 10, 20, edges=S1S2)
    return s.holds("server1", 0, None).holds("server2", 13.5, s2_holds_until, epoch=2)


def test_cti_on_both_nodes_while_cut_and_until_r4_after_is_allowed() -> None:
    """Without a witness, a cut pair runs CTI twice until R4's bound (+ margin) after the link heals."""
    assert rule(cut_story(24.0), "split-brain")[1] == []


def test_cti_on_both_nodes_past_r4_after_the_heal_is_split_brain() -> None:
    """Two CTI servers 10 s after the link healed: past R4's 3.5 s (+ 2 s)."""
    assert [
        w[:46] for w in rule(cut_story(30.0), "split-brain")[1]] == ["CTI ran on both nodes for 4.49 s outside a cut"]


def test_cti_on_both_nodes_without_any_cut_is_split_brain() -> None:
    """A kill is not a cut: CTI on both nodes around it is a violation."""
    s = failover_story(12.5).holds("server1", 0, 13.0).holds("server2", 12.6, None, epoch=2)
    assert len(rule(s, "split-brain")[1]) == 1


def test_with_a_witness_an_overlap_of_one_tick_is_allowed_and_longer_is_not() -> None:
    """SPEC 12: with a witness, never two CTI servers for longer than one tick (I = 0.5 s), cut or not."""
    ok = Story(witness=True).roles("server1", (0, "ACTIVE")).roles("server2", (0, "STANDBY"))
    ok.holds("server1", 0, 10.4).holds("server2", 10.0, None, epoch=2)
    bad = Story(witness=True).roles("server1", (0, "ACTIVE")).roles("server2", (0, "STANDBY"))
    bad.fault(Kind.PARTITION, 9, 20, edges=S1S2)
    bad.holds("server1", 0, 10.8).holds("server2", 10.0, None, epoch=2)
    assert (rule(ok, "split-brain")[1], len(rule(bad, "split-brain")[1])) == ([], 1)


def test_stale_epoch_is_allowed_only_inside_a_cut_without_a_witness() -> None:
    """A registration below an epoch already seen: the cut pair's own (allowed), outside it or with a witness not."""
    inside = cut_story(24.0).holds("server1", 15.0, None, epoch=1, stale=True)
    outside = cut_story(24.0).holds("server1", 40.0, None, epoch=1, stale=True)
    witnessed = cut_story(24.0, witness=True).holds("server1", 15.0, None, epoch=1, stale=True)
    assert [len(rule(s, "stale-epoch")[1]) for s in (inside, outside, witnessed)] == [0, 1, 1]


# -- config ----------------------------------------------------------------------------------------------
def writes_story(*writes: Write, final: str, final_stamp: tuple[str, str]) -> Story:
    s = steady_pair()
    s.writes = list(writes)
    s.final = {n: (final, *final_stamp) for n in ("server1", "server2")}
    return s


def test_the_last_acknowledged_write_wins() -> None:
    """Two acknowledged writes, the pair ends on the newer: nothing lost."""
    w1 = Write(1, "server1", "a", 5, 5.1, 200, stamp(100), True)
    w2 = Write(2, "server2", "b", 6, 6.1, 200, stamp(200, "server2"), True)
    assert rule(writes_story(w1, w2, final="b", final_stamp=stamp(200, "server2")), "config") == (2, [])


def test_ending_on_an_older_value_loses_the_newer_acknowledged_write() -> None:
    """The pair ends on write 1 although write 2 (acknowledged, stamped later) followed it."""
    w1 = Write(1, "server1", "a", 5, 5.1, 200, stamp(100), True)
    w2 = Write(2, "server2", "b", 6, 6.1, 200, stamp(200, "server2"), True)
    found = rule(writes_story(w1, w2, final="a", final_stamp=stamp(100)), "config")[1]
    assert [f[:50] for f in found] == [f"{n} ends with 'a': 1 acknowledged write(s) lost"[:50]
                                       for n in ("server1", "server2")]


def test_a_node_going_back_to_an_older_value_is_a_revert() -> None:
    """server2 held write 2, then showed write 1 again."""
    w1 = Write(1, "server1", "a", 5, 5.1, 200, stamp(100), True)
    w2 = Write(2, "server1", "b", 6, 6.1, 200, stamp(200), True)
    s = writes_story(w1, w2, final="b", final_stamp=stamp(200))
    s.vips["server2"] = [(5.2, "a"), (6.2, "b"), (20.0, "a"), (21.0, "b")]
    assert rule(s, "config")[1] == ["server2 went back from 'b' to the older 'a'"]


def test_a_write_ordered_before_one_its_node_already_held_is_reordered() -> None:
    """HLC: a later write on the same node must carry a later stamp (even if the wall clock stepped back)."""
    w1 = Write(1, "server1", "a", 5, 5.1, 200, stamp(300), False)
    w2 = Write(2, "server1", "b", 6, 6.1, 200, stamp(200), False)
    found = rule(writes_story(w1, w2, final="a", final_stamp=stamp(300)), "config")[1]
    assert any("write #2 on server1 is ordered before #1" in f for f in found)


def test_concurrent_writes_across_a_cut_are_ordered_by_their_stamps() -> None:
    """Writes on both sides of a cut are concurrent: the higher stamp wins and the other is superseded, not lost."""
    w1 = Write(1, "server1", "a", 10, 10.1, 200, stamp(300), False)
    w2 = Write(2, "server2", "b", 11, 11.1, 200, stamp(200, "server2"), False)
    s = writes_story(w1, w2, final="a", final_stamp=stamp(300))
    s.fault(Kind.PARTITION, 9, 20, edges=S1S2)
    assert rule(s, "config")[1] == []


# -- R1 --------------------------------------------------------------------------------------------------
def test_r1_failover_within_the_bound_passes() -> None:
    """kill -9 of the ACTIVE at 10, server2 ACTIVE at 12.5: the bound applied once and held."""
    assert rule(failover_story(12.5), "R1") == (1, [])


def test_r1_failover_past_the_bound_is_a_violation() -> None:
    """server2 ACTIVE 6 s after the kill: more than R1's 2.5 s + 2 s."""
    applied, found = rule(failover_story(16.0), "R1")
    assert (applied, found) == (1, ["server2 ACTIVE after kill server1: not within 4.50 s"])


def test_r1_does_not_apply_when_the_dead_node_came_back_in_time() -> None:
    """The killed node restarted 1 s later: nobody had to fail over."""
    s = Story().roles("server1", (0, "ACTIVE"), (10, None), (12, "ACTIVE")).roles("server2", (0, "STANDBY"))
    s.fault(Kind.KILL, 10, 11, node="server1")
    assert rule(s, "R1") == (0, [])


def test_r1_does_not_apply_when_the_survivor_lost_its_lan_or_an_operator_acted() -> None:
    """The survivor's LAN cut, or a switch in the window: the bound's conditions did not hold."""
    lan = failover_story(30.0)
    lan.fault(Kind.PARTITION, 11, 25, edges=(("server2", "lb"),))
    op = failover_story(30.0)
    op.fault(Kind.MAINTENANCE, 11, 25, node="server2")
    assert (rule(lan, "R1"), rule(op, "R1")) == ((0, []), (0, []))


def test_r1_does_not_apply_when_the_cut_also_took_the_survivors_lan() -> None:
    """A one-way cut server1 -> server2 that also drops the LB's packets to server2: server2's LAN check fails, so
    it may not take ACTIVE (R1 needs a working LAN)."""
    s = Story().roles("server1", (0, "ACTIVE")).roles("server2", (0, "STANDBY"))
    s.fault(Kind.ONEWAY, 10, 30, edges=(("server1", "server2"), ("lb", "server2")))
    assert rule(s, "R1") == (0, [])


def test_a_bound_is_not_judged_where_the_machine_starved_the_pair() -> None:
    """server2 counts failed probes of a server1 that is up, with nothing between them (a starved machine: R2
    counts a probe slower than T as a failure): a late failback there is not judged, only counted."""
    s = failback_story(27.0)
    s.failing["server2"] = [(24.0, 25.0)]
    v = check(s.history()).results["R3"]
    assert (v.applied, v.starved, v.violations) == (0, 1, [])


def test_failures_explained_by_a_fault_do_not_count_as_starvation() -> None:
    """Failed probes during a cut between the nodes (and just after it) are the cut's, not the machine's."""
    s = dual_story(27.0)
    s.failing["server2"] = [(10.5, 20.5)]
    v = check(s.history()).results["R4"]
    assert (v.applied, v.starved, len(v.violations)) == (1, 0, 1)


def test_r1_still_applies_when_a_fault_touches_only_the_dead_node() -> None:
    """The dead node's disk filling up changes nothing for the survivor."""
    s = failover_story(16.0)
    s.fault(Kind.DISK, 11, 20, node="server1")
    assert rule(s, "R1")[0] == 1 and len(rule(s, "R1")[1]) == 1


def test_r1_after_a_cut_applies_with_a_witness_only_if_the_active_lost_etcd_too() -> None:
    """With a witness, an ACTIVE cut from its peer but not from etcd keeps the key: R1 must not fire."""
    s = Story(witness=True).roles("server1", (0, "ACTIVE")).roles("server2", (0, "STANDBY"))
    s.fault(Kind.PARTITION, 10, 30, edges=S1S2)
    both = Story(witness=True).roles("server1", (0, "ACTIVE"), (11.5, "STANDBY", "witness"))
    both.roles("server2", (0, "STANDBY"), (20, "ACTIVE", "failover"))
    both.fault(Kind.PARTITION, 10, 30, edges=(("server1", "server2"), ("server1", "etcd")))
    assert (rule(s, "R1"), rule(both, "R1")[0], len(rule(both, "R1")[1])) == ((0, []), 1, 1)


# -- R3, R4, R5 ------------------------------------------------------------------------------------------
def failback_story(s1_active_at: float, cause: str = "failover") -> Story:
    s = Story().roles("server1", (0, "ACTIVE"), (10, None), (21, "STANDBY"), (s1_active_at, "ACTIVE", "failback"))
    s.roles("server2", (0, "STANDBY"), (12.5, "ACTIVE", cause), (s1_active_at - 0.2, "STANDBY", "failback"))
    s.fault(Kind.KILL, 10, 20, node="server1")
    return s


def test_r3_failback_within_n_i_plus_i_of_server1_serving() -> None:
    """server1 serves again at 21 and is ACTIVE at 23: within N·I + I (+ margin)."""
    assert rule(failback_story(23.0), "R3") == (1, [])


def test_r3_failback_late_is_a_violation_and_after_a_manual_switch_it_does_not_apply() -> None:
    """Failback 6 s after server1 serves is late; server2 ACTIVE by a manual switch stays (no R3)."""
    assert len(rule(failback_story(27.0), "R3")[1]) == 1
    assert rule(failback_story(27.0, cause="manual"), "R3") == (0, [])


def dual_story(one_again_at: float) -> Story:
    s = Story().roles("server1", (0, "ACTIVE"))
    s.roles("server2", (0, "STANDBY"), (13, "ACTIVE", "failover"), (one_again_at, "STANDBY", "dual_active"))
    s.fault(Kind.PARTITION, 10, 20, edges=S1S2)
    return s


def test_r4_one_active_again_within_2n_i_plus_i_of_the_heal() -> None:
    """Both ACTIVE when the cut heals at 20; server2 steps down at 22 (fine) or 27 (late)."""
    assert rule(dual_story(22.0), "R4") == (1, [])
    assert len(rule(dual_story(27.0), "R4")[1]) == 1


def test_r5_the_active_cut_from_its_lan_steps_down() -> None:
    """server1 loses the LB (its LAN probe target) at 10: STANDBY at 12.5 passes, still ACTIVE at 30 fails."""
    ok = Story().roles("server1", (0, "ACTIVE"), (12.5, "STANDBY", "lan_lost")).roles("server2", (0, "STANDBY"))
    ok.fault(Kind.ONEWAY, 10, 30, edges=(("lb", "server1"),))
    bad = Story().roles("server1", (0, "ACTIVE")).roles("server2", (0, "STANDBY"))
    bad.fault(Kind.ONEWAY, 10, 30, edges=(("server1", "lb"),))
    assert (rule(ok, "R5"), rule(bad, "R5")[0], len(rule(bad, "R5")[1])) == ((1, []), 1, 1)


# -- R7, R9, R10 -------------------------------------------------------------------------------------------
def switch_story(s2_active_at: float, status: int = 200) -> Story:
    s = Story().roles("server1", (0, "ACTIVE"), (10.1, "STANDBY", "manual"))
    s.roles("server2", (0, "STANDBY"), (s2_active_at, "ACTIVE", "manual"))
    s.fault(Kind.SWITCH, 10, node="server1", target="server2", status=status, answered=s2_active_at + 0.05)
    return s


def test_r7_switch_within_one_interval_and_a_refusal_is_not_judged() -> None:
    """Target ACTIVE 0.3 s after the request passes, 3 s fails; a 409 is the SPEC's refusal, not a violation."""
    assert rule(switch_story(10.3), "R7") == (1, [])
    assert len(rule(switch_story(13.0), "R7")[1]) == 1
    assert rule(switch_story(13.0, status=409), "R7") == (0, [])


def test_r9_the_crashed_cti_server_registers_again_within_one_interval() -> None:
    """CTI killed on the ACTIVE at 10: registered again at 10.4 passes, at 14 fails."""
    for again, bad in ((10.4, 0), (14.0, 1)):
        s = steady_pair()
        s.registrations.clear()
        s.holds("server1", 0, 10.0).holds("server1", again, None)
        s.fault(Kind.CTI_CRASH, 10, node="server1")
        assert len(rule(s, "R9")[1]) == bad


def test_r10_sigterm_hands_over_within_2_s_and_the_process_is_gone_within_5_s() -> None:
    """SIGTERM to the ACTIVE at 10: exit at 11 and the peer ACTIVE at 11 pass; no exit at all fails."""
    def story(exits: bool) -> Story:
        s = Story().roles("server1", (0, "ACTIVE"), (10.5, None), (31, "STANDBY"))
        s.roles("server2", (0, "STANDBY"), (11, "ACTIVE", "shutdown"))
        s.fault(Kind.TERM, 10, 30, node="server1")
        if exits:
            s.life.insert(0, Life(11.0, "server1", "exit", "0"))
        return s

    assert rule(story(True), "R10") == (1, [])
    assert rule(story(False), "R10")[1] == ["server1 still running 7.00 s after SIGTERM"]


def test_cti_on_a_standby_past_the_stop_grace_is_a_violation() -> None:
    """server1 STANDBY from 10 but its CTI registration held until 20."""
    s = Story().roles("server1", (0, "ACTIVE"), (10, "STANDBY", "lan_lost")).roles("server2", (0, "STANDBY"))
    s.holds("server1", 0, 20.0)
    assert len(rule(s, "CTI-on-standby")[1]) == 1


def test_the_vip_sending_requests_to_a_standby_is_a_violation() -> None:
    """Requests answered by server2, STANDBY since the start, at 30 s."""
    s = steady_pair()
    s.vip = [VipAnswer(t / 10, t / 10 + 0.01, "server1") for t in range(50, 250)]
    assert rule(s, "VIP")[1] == []
    s.vip += [VipAnswer(30.0, 30.01, "server2")]
    assert len(rule(s, "VIP")[1]) == 1


# -- settling after a storm, processes ------------------------------------------------------------------
def test_one_active_after_each_storm_and_never_two_in_the_quiet_period() -> None:
    """A storm (kill of server1, 10-20) heals; server2 is ACTIVE, failback follows: fine. Both ACTIVE later in the
    quiet period is a violation; a switch there is only noted (R2 allows one on a starved machine)."""
    s = failback_story(23.0)
    s.storms = [(10.0, 20.0)]
    s.registrations = []
    s.holds("server1", 0, 10.0).holds("server2", 12.6, 22.8, epoch=2).holds("server1", 23.0, None, epoch=3)
    assert rule(s, "settle")[1] == []
    s.roles("server2", (0, "STANDBY"), (12.5, "ACTIVE", "failover"), (22.8, "STANDBY", "failback"),
            (40.0, "ACTIVE", "failover"))
    assert [v[:41] for v in rule(s, "settle")[1]] == ["both nodes ACTIVE 19.00 s after the storm"]
    s.roles("server1", (0, "ACTIVE"), (10, None), (21, "STANDBY"), (23.0, "ACTIVE", "failback"),
            (39.9, "STANDBY", "failover"))
    v = check(s.history()).results["settle"]
    assert (v.violations, [n[:30] for n in v.notes]) == ([], ["t=39.91 s: server1 went STANDB",
                                                             "t=40.01 s: server2 went ACTIVE"])


def test_an_active_node_without_cti_is_a_violation() -> None:
    """server1 ACTIVE throughout but its CTI registration gone from 10 to 20 (R9: CTI runs on the ACTIVE)."""
    s = steady_pair()
    s.registrations = []
    s.holds("server1", 0, 10.0).holds("server1", 20.0, None)
    assert [v[:41] for v in rule(s, "CTI-on-active")[1]] == ["server1 ACTIVE without CTI registered for"]


def test_a_node_exiting_by_itself_is_a_violation() -> None:
    """An exit inside a kill's window is the nemesis's doing; one at 30 with no fault is not."""
    s = failover_story(12.5)
    s.life.append(Life(50.0, "server2", "exit", "1"))
    assert rule(s, "process")[1] == ["server2 exited by itself (status 1)"]


def test_with_a_witness_a_thawed_node_may_overlap_until_it_steps_down_and_says_so() -> None:
    """A node frozen past its lease wakes up ACTIVE and its CTI resumes at its old epoch before its first tick can
    step down: not a partition (SPEC 12's one tick), judged by T + stop grace + lapse (+ margin) and noted."""
    def story(until: float) -> Story:
        s = Story(witness=True).roles("server1", (0, "ACTIVE"), (10, None), (20.5, "ACTIVE"), (until, "STANDBY"))
        s.roles("server2", (0, "STANDBY"), (14, "ACTIVE", "failover"))
        s.fault(Kind.FREEZE, 10, 20, node="server1")
        return s.holds("server1", 0, 10.5).holds("server2", 14.2, None, epoch=5).holds(
            "server1", 20.2, until, epoch=2, stale=True)

    short, long = check(story(22.0).history()), check(story(30.0).history())
    assert (short.results["split-brain"].violations, short.results["stale-epoch"].violations) == ([], [])
    assert [n[:20] for n in short.results["split-brain"].notes] == ["pause: t=20.20 s, 1."]
    assert [v.what[:40] for v in long.results["split-brain"].violations] == [
        "CTI ran on both nodes for 9.80 s after s"]


def test_a_node_too_starved_to_answer_counts_as_cut_from_its_peer() -> None:
    """server2 runs but answers nobody for 3 s (the observer, never cut, gets no status within 1 s): its peer cannot
    tell it from a dead node either, so its R1 promotion and the split brain until R4 after are the SPEC's; the
    time is reported as starved, and no bound is judged in it."""
    s = Story().roles("server1", (0, "ACTIVE")).roles("server2", (0, "STANDBY"), (10, None), (13, "ACTIVE", "failover"),
                                                      (16, "STANDBY", "dual_active"))
    s.holds("server1", 0, None).holds("server2", 12.8, 16.0, epoch=1, stale=True)
    v = check(s.history())
    assert (v.results["split-brain"].violations, v.results["stale-epoch"].violations) == ([], [])
    assert round(World(s.history()).unresponsive("server2").total) == 3


def test_the_journal_must_agree_with_the_managers_own_counters() -> None:
    """A recorder that missed journal entries would judge a different history: the manager's overlap seconds and
    stale count at the end must match what the journal adds up to."""
    s = cut_story(24.0)
    h = s.history()
    h.manager = {"overlap_seconds_total": 10.5, "stale_epoch_total": 0}
    assert check(h).results["recorder"].violations == []
    h.manager = {"overlap_seconds_total": 12.0, "stale_epoch_total": 1}
    assert len(check(h).results["recorder"].violations) == 1


def test_a_registration_below_its_own_nodes_epoch_is_stale_even_inside_a_cut() -> None:
    """After R4 the survivor moves above its peer; a CTI server of that node registering afterwards at the old epoch
    is stale whatever the peer does (nothing about a cut can excuse a node disagreeing with itself)."""
    s = cut_story(24.0)
    s.roles("server1", (0, "ACTIVE"), (21.0, "ACTIVE", "failover"))
    h = s.history()
    h.samples["server1"] = [x._replace(epoch=3) if x.sent >= 21.0 else x for x in h.samples["server1"]]
    h.registrations.append(Registration(22.0, "register", "server1", 1, False))
    h.registrations.sort()
    assert [v.what for v in check(h).results["stale-epoch"].violations] == [
        "server1 registered CTI with epoch 1, below its own epoch 3"]
