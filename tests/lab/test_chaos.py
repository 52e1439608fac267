"""The fault matrix of issue 5 against real node processes on the lab's hosts, one test per row.

Every row checks its SPEC bound plus a margin and takes two measures from outside the pair: the
CTI manager simulator's overlap seconds and the acknowledged config changes lost (always 0). Rows
marked ``slow`` run under ``make chaos`` only; ``HS_LAB_FULL=1`` gives the long faults their full
duration. Waiting is polling against a deadline; a fixed wait only ever shows that something does
NOT happen during a window (no switch under loss, say).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from lab.labpair import PEER, ConfigLedger, LabPair
from lab.netns import skewed_clock
from lab.waiting import wait_until
from tests.lab.matrix import Row, lab_seconds, margin_for

pytestmark = [pytest.mark.lab, pytest.mark.integration]

MakePair = Callable[..., LabPair]
RowOf = Callable[..., Row]


def settled_pair(make_pair: MakePair, **kwargs: Any) -> tuple[LabPair, ConfigLedger]:
    """Both nodes started together and settled (server1 ACTIVE with CTI), and a first config change."""
    pair = make_pair(**kwargs)
    pair.start()
    pair.settle("server1")
    ledger = ConfigLedger(pair)
    assert ledger.put("server1")
    return pair, ledger


def watch_roles(pair: LabPair, seconds: float) -> set[tuple[str | None, str | None]]:
    """The role pairs seen while polling for ``seconds`` (a window in which nothing must change)."""
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(pair.roles())
        time.sleep(0.1)
    return seen


def rejoin(pair: LabPair, *node_ids: str) -> None:
    """Start ``node_ids`` again and wait until the pair is whole: server1 ACTIVE by R3/R6."""
    for n in node_ids:
        pair.nodes[n].start()
    for n in node_ids:
        wait_until(lambda n=n: pair.serving(n), 20, f"{n} serving again")
    pair.settle("server1", pair.bound_r1 + pair.bound_r3 + margin_for(pair))


# -- crashes and freezes ---------------------------------------------------------------------------


def test_kill_9_of_the_active(make_pair: MakePair, row: RowOf) -> None:
    """kill -9 of the ACTIVE: server2 ACTIVE within N·I+T+I, CTI never on both, no change lost."""
    pair, ledger = settled_pair(make_pair)
    r = row("kill -9 ACTIVE", bound=pair.bound_r1)
    pair.nodes["server1"].kill()
    r.within(pair.wait_active("server2", pair.bound_r1 + 10), pair.bound_r1, margin_for(pair))
    wait_until(lambda: pair.holders() == ["server2"], 5, "CTI on server2")
    assert ledger.put()
    rejoin(pair, "server1")
    assert ledger.put()
    r.outside(pair, ledger)


@pytest.mark.slow  # make test keeps the ACTIVE's kill; tests/integration covers this one too
def test_kill_9_of_the_standby(make_pair: MakePair, row: RowOf) -> None:
    """kill -9 of the STANDBY changes nothing: server1 stays ACTIVE with the same CTI process."""
    pair, ledger = settled_pair(make_pair)
    r = row("kill -9 STANDBY")
    pid = pair.cti("server1")["pid"]
    pair.nodes["server2"].kill()
    wait_until(lambda: pair.status("server1")["peer"]["status"] == "Error", pair.bound_r1 + margin_for(pair),
               "server2 shown in Error")
    assert ledger.put("server1")
    assert watch_roles(pair, 2 * pair.interval) == {("ACTIVE", None)}
    assert pair.cti("server1")["pid"] == pid
    rejoin(pair, "server2")
    assert pair.cti("server1")["pid"] == pid
    assert pair.role_changes("server1") == 1  # its own promotion at start, nothing since
    r.outside(pair, ledger)


def test_sigstop_of_the_active_then_sigcont(make_pair: MakePair, row: RowOf) -> None:
    """A frozen ACTIVE host (SIGSTOP, 3·N·I) is replaced within R1; thawed, it steps down at once."""
    pair, ledger = settled_pair(make_pair)
    r = row("SIGSTOP ACTIVE 3·N·I, SIGCONT", bound=pair.bound_r1)
    frozen = 3 * pair.failures * pair.interval
    t0 = time.monotonic()
    pair.nodes["server1"].freeze()
    try:
        r.within(pair.wait_active("server2", pair.bound_r1 + 10), pair.bound_r1, margin_for(pair))
        wait_until(lambda: pair.holders() == ["server2"], 5, "CTI on server2")
        assert ledger.put("server2")
        time.sleep(max(0.0, frozen - (time.monotonic() - t0)))  # the freeze lasts 3·N·I, whatever R1 took
    finally:
        pair.nodes["server1"].thaw()
    thawed = time.monotonic()
    wait_until(lambda: pair.role("server1") == "STANDBY", pair.bound_r4 + margin_for(pair), "server1 STANDBY")
    r.took(time.monotonic() - thawed)
    assert pair.role("server2") == "ACTIVE" or pair.role("server1") == "ACTIVE"  # R3 may hand it back, once
    pair.settle("server1", pair.bound_r3 + margin_for(pair) + 5)
    assert ledger.put()
    # The thawed CTI may resume for at most the time its node needs to see it was replaced: I + T.
    r.outside(pair, ledger, overlap_max=pair.interval + pair.timeout)


# -- partitions ------------------------------------------------------------------------------------


def test_peer_link_cut_both_ways_then_healed(make_pair: MakePair, row: RowOf) -> None:
    """A cut peer link (LAN up) makes both ACTIVE; after healing, one ACTIVE again within 2N·I+I (R4)."""
    pair, ledger = settled_pair(make_pair)
    r = row("peer link cut both ways, healed", bound=pair.bound_r4)
    cut_at = time.monotonic()
    pair.lab.cut("server1", "server2")
    wait_until(lambda: pair.roles() == ("ACTIVE", "ACTIVE"), pair.bound_r1 + margin_for(pair), "both ACTIVE")
    assert ledger.put("server1") and ledger.put("server2")
    pair.lab.heal()
    took, winner = pair.wait_one_active(pair.bound_r4 + 10)
    dual_for = time.monotonic() - cut_at
    r.within(took, pair.bound_r4, margin_for(pair))
    pair.settle("server1", pair.bound_r3 + margin_for(pair) + 5)
    assert ledger.put()
    # Without a witness the pair cannot tell a cut link from a dead peer (SPEC 12): CTI ran on both
    # from the promotion until R4 repaired it.
    r.outside(pair, ledger, overlap_max=dual_for)
    assert winner in PEER


def test_one_way_cut_settles_without_flapping(make_pair: MakePair, row: RowOf) -> None:
    """Packets server1→server2 dropped only: the roles settle within 2N·I+I and stay; healed, one ACTIVE (R4)."""
    pair, ledger = settled_pair(make_pair)
    r = row("one-way cut s1→s2, healed", bound=pair.bound_r4)
    cut_at = time.monotonic()
    pair.lab.cut("server1", "server2", both=False)
    time.sleep(pair.bound_r4)  # the outcome must be reached within this window...
    settled = pair.roles()
    seen = watch_roles(pair, lab_seconds(pair.bound_r4, 30))  # ...and hold through the next one: no flapping
    assert seen == {settled}, f"roles flapped during a one-way cut: {sorted(map(str, seen))}"
    assert settled[0] == "ACTIVE"
    assert ledger.put("server1")
    pair.lab.heal()
    took, _ = pair.wait_one_active(pair.bound_r4 + 10)
    dual_for = time.monotonic() - cut_at
    r.within(took, pair.bound_r4, margin_for(pair))
    pair.settle("server1", pair.bound_r3 + margin_for(pair) + 5)
    assert ledger.put()
    # TCP needs both directions: dropping s1→s2 is a partition for every connection, so server2
    # promotes as for a two-way cut (no witness) and R4 repairs it after healing.
    r.outside(pair, ledger, overlap_max=dual_for)


def test_active_cut_from_lan_and_peer(make_pair: MakePair, row: RowOf) -> None:
    """R5: the ACTIVE cut from the LAN and its peer goes STANDBY and stops CTI; the peer takes over (R1)."""
    pair, ledger = settled_pair(make_pair)
    r = row("ACTIVE cut from LAN and peer", bound=pair.bound_r1)
    t0 = time.monotonic()
    pair.lab.isolate("server1")
    wait_until(lambda: pair.role("server1") == "STANDBY", pair.bound_r1 + margin_for(pair), "server1 STANDBY (R5)")
    r.within(time.monotonic() - t0, pair.bound_r1, margin_for(pair))
    # Its CTI stops too; a CTI that says goodbye to a manager it cannot reach waits out that call.
    wait_until(lambda: pair.cti("server1")["state"] == "stopped", 2, "server1's CTI stopped")
    r.within(pair.wait_active("server2", pair.bound_r1 + 10), pair.bound_r1, margin_for(pair))
    wait_until(lambda: pair.holders() == ["server2"], 5, "CTI on server2")
    assert "R5 LAN lost" in pair.nodes["server1"].ftlog()
    assert ledger.put("server2")
    pair.lab.heal()
    pair.settle("server1", pair.bound_r3 + margin_for(pair) + 5)
    assert ledger.put()
    r.outside(pair, ledger)


@pytest.mark.parametrize(("loss", "profile"), [
    pytest.param(0.10, 0.5, id="10pct"),
    # TCP retransmits a lost segment after 200 ms at the earliest: at T = 0.5 s a probe and its hedge
    # get one retransmission between them, and 20 % loss each way did reach N = 3 failures in a row
    # once in 240 ticks. At I = T = 1 s a probe survives two losses in a row.
    pytest.param(0.20, 1.0, id="20pct", marks=pytest.mark.slow),
])
def test_random_loss_on_the_peer_link_never_switches(make_pair: MakePair, row: RowOf, loss: float,
                                                     profile: float) -> None:
    """R2: 10 % or 20 % of the packets between the nodes dropped, each way, for 2 minutes: no switch."""
    pair, ledger = settled_pair(make_pair, interval=profile, timeout=profile)
    duration = lab_seconds(10, 120)
    r = row(f"{loss:.0%} loss on the peer link, {duration:.0f} s, I=T={profile:g} s")
    changes = pair.role_changes("server1"), pair.role_changes("server2")
    pair.lab.loss("server1", "server2", loss)
    worst = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        assert pair.roles() == ("ACTIVE", "STANDBY")
        worst = max(worst, pair.status("server2")["local"]["consecutive_failures"])
        if len(ledger.issued) < duration / 5:
            ledger.put("server1")
        time.sleep(0.2)
    pair.lab.heal()
    assert (pair.role_changes("server1"), pair.role_changes("server2")) == changes
    assert worst < pair.failures
    assert ledger.put()
    r.outside(pair, ledger)


def test_peer_answering_just_under_t_never_switches(make_pair: MakePair, row: RowOf) -> None:
    """R2: every request between the nodes delayed by 0.8·T through a proxy: answers under T, no switch."""
    pair = make_pair(interval=1.0, timeout=1.0)
    lab, delay = pair.lab, 0.8 * pair.timeout
    infra = lab.addr("infra")
    routes, port = [], 20000
    for src, dst in (("server1", "server2"), ("server2", "server1")):
        for target in (8080, 2011):
            port += 1
            routes.append(f"{infra}:{port}={lab.addr(dst)}:{target}")
            lab.redirect(src, dst, target, (infra, port))
    lab.spawn("infra", [sys.executable, "-m", "lab.tools", "delay",
                        *routes, "--delay", str(delay)], log=pair.root / "proxy.out")
    wait_until(lambda: "ready" in (pair.root / "proxy.out").read_text(), 10, "the delaying proxy")
    pair.start()
    pair.settle("server1")
    t0 = time.monotonic()
    assert pair.http.get(f"http://{infra}:20001/monitor?mod=NONE").text == "OK"  # server2's monitor, via the proxy
    assert time.monotonic() - t0 >= delay
    ledger = ConfigLedger(pair)
    duration = lab_seconds(6, 60)
    r = row(f"peer answers in 0.8·T (proxy), {duration:.0f} s")
    changes = pair.role_changes("server1"), pair.role_changes("server2")
    worst = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        assert pair.roles() == ("ACTIVE", "STANDBY")
        worst = max(worst, pair.status("server2")["local"]["consecutive_failures"],
                    pair.status("server1")["local"]["consecutive_failures"])
        if len(ledger.issued) < 4:
            assert ledger.put()
        time.sleep(0.2)
    assert (pair.role_changes("server1"), pair.role_changes("server2")) == changes
    assert worst < pair.failures
    r.outside(pair, ledger)


@pytest.mark.parametrize("rounds", [pytest.param(2, id="2x"), pytest.param(10, id="10x", marks=pytest.mark.slow)])
def test_both_restarted_together(make_pair: MakePair, row: RowOf, rounds: int) -> None:
    """R6: both nodes stopped and started together, again and again: server1 ends ACTIVE every time."""
    pair, ledger = settled_pair(make_pair)
    r = row("both restarted together", bound=pair.bound_r1, runs=rounds)
    for _ in range(rounds):
        for n in pair.nodes.values():
            n.signal(signal.SIGTERM)
        for n in pair.nodes.values():
            assert n.proc is not None
            n.proc.wait(10)
        pair.start(wait=False)
        wait_until(lambda: pair.serving("server1") and pair.serving("server2"), 20, "both serving")
        r.within(pair.wait_active("server1", pair.bound_r1 + 10), pair.bound_r1, margin_for(pair))
        wait_until(lambda: pair.holders() == ["server1"], 10, "CTI only on server1")
        assert ledger.put()
    r.outside(pair, ledger)


# -- clocks and disks ------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [pytest.param("-600s", id="server2-behind"),
                                    pytest.param("+600s", id="server2-ahead", marks=pytest.mark.slow)])
def test_skewed_clock_failover_failback_and_config_order(make_pair: MakePair, row: RowOf, offset: str) -> None:
    """server2's clock 10 minutes off: skew measured, later changes win, failover and failback in bound."""
    pair = make_pair()
    pair.nodes["server1"].start()
    pair.nodes["server2"].start(extra_env=skewed_clock(offset))
    wait_until(lambda: pair.serving("server1") and pair.serving("server2"), 20, "both serving")
    pair.settle("server1")
    skew = wait_until(lambda: pair.status("server1")["clock_skew_s"], 10, "the skew measured")
    assert abs(abs(skew) - 600) < 5, skew
    ledger = ConfigLedger(pair)
    behind, ahead = ("server2", "server1") if offset.startswith("-") else ("server1", "server2")
    r = row(f"clock {offset} on server2, failover + failback", bound=pair.bound_r1 + pair.bound_r3)
    assert ledger.put(ahead)
    assert ledger.put(behind)  # later in real time, earlier by the wall clock: must still win
    assert ledger.lost(5) == 0
    pair.nodes["server1"].kill()
    r.within(pair.wait_active("server2", pair.bound_r1 + 10), pair.bound_r1, margin_for(pair))
    assert ledger.put("server2")
    pair.nodes["server1"].start()
    wait_until(lambda: pair.serving("server1"), 20, "server1 serving again")
    r.within(pair.wait_active("server1", pair.bound_r3 + 10), pair.bound_r3, margin_for(pair))
    assert ledger.put(ahead) and ledger.put(behind)
    r.outside(pair, ledger)


def _integrity(db: Any) -> str:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("fault", ["full", pytest.param("read-only", marks=pytest.mark.slow)])
def test_data_dir_full_or_read_only_on_the_active(make_pair: MakePair, row: RowOf, fault: str) -> None:
    """The ACTIVE cannot persist: /healthz 503 with the reason, it hands over, and the db is intact after."""
    pair = make_pair()
    node = pair.nodes["server1"]
    data = node.data_dir
    image = pair.lab.image_fs(data) if fault == "read-only" else pair.lab.small_fs(data, "16m")
    pair.start()
    pair.settle("server1")
    ledger = ConfigLedger(pair)
    assert ledger.put("server1")
    bound = 2 * pair.interval + pair.timeout  # found on the next tick (≤ I), handed over within T
    r = row(f"data dir {fault} on the ACTIVE", bound=bound)
    filler = pair.lab.fill(data) if fault == "full" else pair.lab.fs_error(data)
    r.within(pair.wait_active("server2", bound + 10), bound, margin_for(pair))
    health = pair.http.get(pair.arbiter_url("server1") + "/healthz")
    assert health.status_code == 503, health.text
    assert "persist" in health.text or "writable" in health.text
    assert "not writable" in node.output() + node.ftlog()
    assert pair.status("server1")["local"]["problem"]
    wait_until(lambda: pair.holders() == ["server2"], 5, "CTI on server2")
    assert ledger.put()
    assert watch_roles(pair, 2 * pair.bound_r3) == {("STANDBY", "ACTIVE")}  # no failback while it cannot persist
    if filler is None:
        # A failed disk is repaired with the node stopped; the database must be intact after fsck.
        # (Restarting the node on the repaired mount is left out: inside `ip netns exec` it still
        # saw the file system read-only, a lab limitation under investigation, see README.)
        node.stop()
        pair.lab.repair_fs(data, image)
        assert _integrity(data / "hotstandby.db") == "ok"
        r.overlap, r.lost = pair.overlap(), ledger.lost_on("server2")
        assert (r.overlap, r.lost) == (0.0, 0)
        return
    filler.unlink()  # space returns
    wait_until(lambda: pair.http.get(pair.arbiter_url("server1") + "/healthz").status_code == 200,
               5 * pair.interval + 10, "server1 healthy again")
    pair.settle("server1", pair.bound_r3 + margin_for(pair) + 5)
    assert ledger.put()
    assert _integrity(data / "hotstandby.db") == "ok"
    r.outside(pair, ledger)


def test_database_missing_at_start_is_rebuilt_from_the_peer(make_pair: MakePair, row: RowOf) -> None:
    """A node whose database vanished starts STANDBY and pulls the settings from the ACTIVE peer (no guesswork)."""
    pair, ledger = settled_pair(make_pair)
    r = row("database missing at start")
    pair.nodes["server2"].kill()
    assert ledger.put("server1")
    for f in pair.nodes["server2"].data_dir.glob("hotstandby.db*"):
        f.unlink()
    pair.nodes["server2"].start()
    seen = watch_roles(pair, pair.bound_r1 + margin_for(pair))
    assert {s[1] for s in seen} <= {None, "STANDBY"}, seen
    assert pair.role("server1") == "ACTIVE"
    r.outside(pair, ledger)


def test_database_corrupt_at_start_is_refused(make_pair: MakePair, row: RowOf) -> None:
    """A corrupt database stops the node with one clear line; moved away, the node rebuilds from the peer."""
    pair, ledger = settled_pair(make_pair)
    r = row("database corrupt at start", bound=pair.bound_r3)
    node = pair.nodes["server1"]
    node.kill()
    pair.wait_active("server2", pair.bound_r1 + 10)
    assert ledger.put("server2")
    db = node.data_dir / "hotstandby.db"
    for f in node.data_dir.glob("hotstandby.db-*"):
        f.unlink()
    db.write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 64)
    node.start()
    assert node.proc is not None
    assert node.proc.wait(20) == 2
    assert "corrupt" in node.output().splitlines()[-1]
    assert pair.role("server2") == "ACTIVE"
    db.rename(db.with_suffix(".corrupt"))
    node.start()
    wait_until(lambda: pair.serving("server1"), 20, "server1 serving")
    epoch2 = pair.status("server2")["local"]["epoch"]
    r.within(pair.wait_active("server1", pair.bound_r3 + 10), pair.bound_r3, margin_for(pair))
    assert pair.status("server1")["local"]["epoch"] > epoch2
    assert pair.manager_state()["stale_epoch_total"] == 0
    r.outside(pair, ledger)


# -- the application, and the pair's own secrets ----------------------------------------------------


@pytest.mark.parametrize("command", [pytest.param("/nonexistent/cti-server", id="missing"),
                                     pytest.param("sh -c 'exit 3'", id="crash-loop", marks=pytest.mark.slow)])
def test_cti_failing_with_switch_on_application_error(make_pair: MakePair, row: RowOf, command: str) -> None:
    """A CTI command that cannot run: backoff, cti failed, IPSWS error, the peer takes over and keeps ACTIVE."""
    pair = make_pair(extra={"HS_SWITCH_ON_APPLICATION_ERROR": "true"})
    pair.nodes["server1"].start(extra_env={"HS_CTI_COMMAND": command})
    pair.nodes["server2"].start()
    wait_until(lambda: pair.serving("server1") and pair.serving("server2"), 20, "both serving")
    ledger = ConfigLedger(pair)
    wait_until(lambda: pair.cti("server1")["state"] == "failed", pair.bound_r1 + 10, "server1's CTI failed")
    r = row("CTI command missing / crash loop (IPSWS)", bound=pair.bound_r1)
    ipsws = pair.http.get(pair.monitor_url("server1") + "/monitor?mod=IPSWS")
    if pair.role("server1") == "ACTIVE":
        assert (ipsws.status_code, ipsws.text[:12]) == (503, "IPSWS=ERROR:")
    r.within(pair.wait_active("server2", pair.bound_r1 + 10), pair.bound_r1, margin_for(pair))
    wait_until(lambda: pair.holders() == ["server2"], 5, "CTI on server2")
    assert ledger.put()
    assert watch_roles(pair, 2 * pair.bound_r1) == {("STANDBY", "ACTIVE")}  # no flapping back to server1
    r.outside(pair, ledger)


def test_different_peer_secrets(make_pair: MakePair, row: RowOf) -> None:
    """Different peer secrets: 401s logged on both nodes, status says why, and no role changes because of it."""
    pair, ledger = settled_pair(make_pair)
    r = row("different peer secrets")
    pair.nodes["server2"].stop()
    pair.nodes["server2"].start(extra_env={"HS_PEER_SECRET": "another-secret-0123456789abcdef"})
    wait_until(lambda: pair.serving("server2"), 20, "server2 serving")
    for n in PEER:
        wait_until(lambda n=n: pair.status(n)["peer"]["auth_problem"], pair.bound_r1 + 5, f"{n} saying why")
    seen = watch_roles(pair, pair.bound_r1 + pair.bound_r4)
    assert seen == {("ACTIVE", "STANDBY")}, seen
    for n in PEER:
        assert "401" in pair.nodes[n].ftlog() or "rejected" in pair.nodes[n].ftlog().lower()
    assert ledger.put("server1")
    pair.nodes["server2"].stop()
    pair.nodes["server2"].start()
    wait_until(lambda: pair.serving("server2"), 20, "server2 serving")
    r.outside(pair, ledger)


def test_conflicting_config_changes_during_a_cut_converge(make_pair: MakePair, row: RowOf) -> None:
    """Issue 3: the same setting changed on both sides of a cut link holds the same value on both after healing."""
    pair, ledger = settled_pair(make_pair)
    r = row("conflicting PUT /config across a cut", bound=pair.bound_r4)
    cut_at = time.monotonic()
    pair.lab.cut("server1", "server2")
    wait_until(lambda: pair.status("server2")["local"]["consecutive_failures"] >= 1, 10, "the cut seen")
    assert ledger.put("server1")
    assert ledger.put("server2")
    pair.lab.heal()
    cut_for = time.monotonic() - cut_at
    took, _ = pair.wait_one_active(pair.bound_r4 + 10)
    r.within(took, pair.bound_r4, margin_for(pair))
    wait_until(lambda: pair.config_value("server1", "vip_address") == pair.config_value("server2", "vip_address"),
               2 * pair.interval + margin_for(pair), "the same value on both")
    # CTI may run twice only while the link is cut and, after the heal, until R4 repairs it (2N·I + I).
    r.outside(pair, ledger, overlap_max=cut_for + pair.bound_r4 + margin_for(pair))
