"""The hook runner with real programs and a real database: in order, one at a time, at least once, bounded."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.metrics import ArbiterMetrics
from hotstandby.settings import NodeSettings
from hotstandby.store import Store
from services.hooks import EVENTS, Event, Hooks, backoff_s, cti_event, event_env


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data" / "hotstandby.db")
    yield s
    s.close()


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hook.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def hooks_for(tmp_path: Path, store: Store, command: str, timeout: float = 5.0) -> tuple[Hooks, ArbiterMetrics]:
    node = NodeSettings(node_id="server1", data_dir=tmp_path / "data", notify_command=command,
                        notify_timeout_s=timeout, cluster_name="pbx-east")
    metrics = ArbiterMetrics("server1")
    ftlog = FaultTolerantLog(tmp_path / "data" / "logs", node_id="server1")
    return Hooks(node=node, store=store, ftlog=ftlog, metrics=metrics, base_env=lambda: {"PATH": os.environ["PATH"]}), \
        metrics


def ftlog_text(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in sorted((tmp_path / "data" / "logs").glob("*.log")))


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def running(hooks: Hooks, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` while the runner delivers in the background."""
    async def main() -> None:
        task = asyncio.create_task(hooks.run())
        try:
            await body()
        finally:
            task.cancel()
    asyncio.run(main())


def ev(n: int, name: str = "role_change") -> Event:
    return Event(name, "ACTIVE" if n % 2 else "STANDBY", "STANDBY" if n % 2 else "ACTIVE", n, rule="R7",
                 cause="manual", reason=f"switch {n}", peer_role="STANDBY")


def counter(metrics: ArbiterMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name, {"node": "server1"})
    return float(value or 0)


def test_events_are_delivered_in_order_with_their_environment(tmp_path: Path, store: Store) -> None:
    """A burst of events reaches the program one at a time in the order they happened, each with its HS_* words."""
    out = tmp_path / "seen"
    hook = script(tmp_path, f'echo "$HS_SEQUENCE $HS_EVENT $HS_NODE_ID $HS_ROLE $HS_PREVIOUS_ROLE $HS_EPOCH '
                            f'$HS_RULE $HS_CAUSE $HS_PEER_ROLE $HS_CLUSTER_NAME $HS_REASON" >> {out}\n'
                            f'[ -e {tmp_path}/busy ] && echo overlap >> {out}\ntouch {tmp_path}/busy\n'
                            f'sleep 0.01\nrm {tmp_path}/busy\n')
    hooks, _ = hooks_for(tmp_path, store, str(hook))

    async def body() -> None:
        seqs = [hooks.emit(ev(n)) for n in range(1, 21)]
        assert seqs == list(range(1, 21))
        await until(lambda: store.pending_events() == 0, 60, "the outbox drained")

    running(hooks, body)
    lines = out.read_text().splitlines()
    assert "overlap" not in lines
    expected = [f"{n} role_change server1 {ev(n).role} {ev(n).previous_role} {n} R7 manual STANDBY pbx-east switch {n}"
                for n in range(1, 21)]
    assert expected == lines


def test_a_hook_that_fails_is_retried_with_backoff_and_holds_the_ones_after_it(tmp_path: Path, store: Store) -> None:
    """Exit 3 twice (logged with its stderr, counted), then 0: delivered on the third attempt, and the next event
    only after it."""
    out, tries = tmp_path / "seen", tmp_path / "tries"
    hook = script(tmp_path, f'echo x >> {tries}\nif [ "$HS_SEQUENCE" = 1 ] && [ $(wc -l < {tries}) -le 2 ]; then\n'
                            f'  echo "webhook answered 503" >&2; exit 3\nfi\necho "$HS_SEQUENCE" >> {out}\n')
    hooks, metrics = hooks_for(tmp_path, store, str(hook))

    async def body() -> None:
        hooks.emit(ev(1))
        hooks.emit(ev(2, "cti_started"))
        await until(lambda: store.pending_events() == 0 and counter(metrics, "hotstandby_hook_pending") == 0,
                    backoff_s(1) + backoff_s(2) + 20, "delivery after retries")

    started = time.monotonic()
    running(hooks, body)
    assert out.read_text().split() == ["1", "2"]
    assert time.monotonic() - started >= backoff_s(1) + backoff_s(2)
    log = ftlog_text(tmp_path)
    assert "Hook role_change #1 failed (attempt 1): exited with status 3: webhook answered 503; next try in 1 s" in log
    assert "Hook role_change #1 failed (attempt 2): exited with status 3: webhook answered 503; next try in 2 s" in log
    assert "Hook role_change #1 delivered after 3 attempts" in log
    assert counter(metrics, "hotstandby_hook_failures_total") == 2
    assert counter(metrics, "hotstandby_hook_pending") == 0


def test_a_hook_that_hangs_is_killed_past_its_timeout_and_retried(tmp_path: Path, store: Store) -> None:
    """A first run that never ends is killed (its whole group) at the timeout, logged and counted; the retry
    delivers; an event emitted meanwhile is queued at once, not after the hang."""
    pids, out = tmp_path / "pids", tmp_path / "seen"
    hook = script(tmp_path, f'if [ ! -e {tmp_path}/hung ]; then touch {tmp_path}/hung\n'
                            f'  sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait; fi\n'
                            f'echo "$HS_SEQUENCE" >> {out}\n')
    hooks, metrics = hooks_for(tmp_path, store, str(hook), timeout=0.5)

    async def body() -> None:
        hooks.emit(ev(1))
        await until(lambda: pids.exists() and len(pids.read_text().split()) == 2, 10, "the hook hanging")
        t0 = time.monotonic()
        assert hooks.emit(ev(2, "peer_lost")) == 2
        assert time.monotonic() - t0 < 0.5, "emit waited for the hanging hook"
        await until(lambda: store.pending_events() == 0, 20, "both delivered")

    running(hooks, body)
    assert out.read_text().split() == ["1", "2"]
    for pid in map(int, pids.read_text().split()):
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], \
            f"process {pid} of the hung hook survived its timeout"
    assert "Hook role_change #1 failed (attempt 1): killed after 0.5 s (HS_NOTIFY_TIMEOUT_S)" in ftlog_text(tmp_path)
    assert counter(metrics, "hotstandby_hook_failures_total") == 1


def test_a_missing_program_is_a_failure_not_a_crash(tmp_path: Path, store: Store) -> None:
    """HS_NOTIFY_COMMAND naming nothing: each attempt fails with the reason and the event stays queued."""
    hooks, metrics = hooks_for(tmp_path, store, str(tmp_path / "no-such-hook"))

    async def body() -> None:
        hooks.emit(ev(1))
        await until(lambda: counter(metrics, "hotstandby_hook_failures_total") >= 1, 10, "a failed attempt")

    running(hooks, body)
    assert f"cannot run {tmp_path}/no-such-hook: No such file or directory" in ftlog_text(tmp_path)
    pending = store.next_event()
    assert pending is not None and pending.attempts == 1 and pending.sequence == 1


def test_sequence_keeps_growing_across_restarts(tmp_path: Path) -> None:
    """HS_SEQUENCE never repeats: after delivery (rows deleted) and a reopen of the database it goes on."""
    db = tmp_path / "data" / "hotstandby.db"
    first = Store(db)
    assert [first.enqueue("peer_lost", "t", {}) for _ in range(3)] == [1, 2, 3]
    for seq in (1, 2, 3):
        first.delivered(seq)
    first.close()
    again = Store(db)
    assert again.enqueue("peer_found", "t", {}) == 4
    again.close()


def test_no_command_queues_nothing(tmp_path: Path, store: Store) -> None:
    """Without HS_NOTIFY_COMMAND no event is kept (the outbox would only grow)."""
    hooks, _ = hooks_for(tmp_path, store, "")
    assert hooks.emit(ev(1)) is None
    assert store.pending_events() == 0


def test_every_event_name_is_documented_and_unknown_ones_are_refused() -> None:
    """The event names are a fixed, documented set (README lists them); a typo in the code fails loudly."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in EVENTS:
        assert f"`{name}`" in readme, name
    with pytest.raises(ValueError, match="unknown hook event"):
        event_env(Event("role_changed", "ACTIVE", "STANDBY", 1), node_id="server1", cluster="c", at="t")


def test_the_cti_supervisors_own_lines_map_to_cti_events(tmp_path: Path) -> None:
    """A real supervisor: its start is cti_started, a crash while it should run is cti_failed (then its watchdog
    restart is cti_started again), its stop is cti_stopped; its other lines are no event."""
    from services.monitor.supervisor import CtiSupervisor

    lines: list[str] = []
    flag = tmp_path / "crash"
    child = script(tmp_path, f'if [ -e {flag} ]; then rm {flag}; exit 3; fi\nexec sleep 60\n')

    async def body() -> None:
        sup = CtiSupervisor([str(child)], on_event=lines.append, restart_delay=lambda: 0.2)
        try:
            await sup.start(epoch=1)
            await until(lambda: any("ready" in line for line in lines), 10, "running")
            flag.touch()
            await sup.restart("manual restart")  # the new child finds the flag and exits 3: a crash
            await until(lambda: sum(line.startswith("CTI server restarted") for line in lines) >= 2, 10,
                        "the watchdog's restart after the crash")
            await sup.stop("node is STANDBY")
        finally:
            await sup.aclose()

    asyncio.run(body())
    kinds = [(cti_event(line), line) for line in lines]
    assert [k for k, _ in kinds if k] == ["cti_started", "cti_started", "cti_failed", "cti_started", "cti_stopped"], \
        kinds
    assert all(k is None for k, line in kinds if "ready" in line)
