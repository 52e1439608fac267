"""The witness client against a real etcd (SPEC 12): leases, guarded takes, release, endpoint fail-over."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotstandby.witness import EtcdWitness, key_for, lease_ttl_request, public_url
from lab.etcd import ETCD, Etcd, running_etcd
from lab.waiting import free_port
from tests.needs import need

KEY = key_for("test")
# A budget, not a wait: a loaded machine's etcd may take a while to fsync a lease grant.
T = 5.0


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    need(ETCD, "etcd-server")
    with running_etcd(tmp_path_factory.mktemp("etcd")) as e:
        yield e


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> str:
    """A cluster name of its own per test, so tests sharing the module's etcd never see each other's key."""
    return request.node.name.replace("[", "-").replace("]", "")


def witness(etcd: Etcd, cluster: str, node_id: str, urls: str | None = None) -> EtcdWitness:
    return EtcdWitness(urls or etcd.url, cluster=cluster, node_id=node_id)


@pytest.mark.parametrize(("n", "interval", "asked"), [(3, 0.5, 2), (3, 0.2, 1), (5, 30.0, 150), (1, 0.05, 1),
                                                      (3, 1 / 3, 1), (2, 1.2, 3)])
def test_the_lease_asked_for_is_max_of_n_times_i_and_one_second(n: int, interval: float, asked: int) -> None:
    """max(N·I, 1 s), rounded up to whole seconds (what etcd takes)."""
    assert lease_ttl_request(n, interval) == asked


def test_public_url_drops_credentials() -> None:
    """Status and logs never show a user:password written into HS_WITNESS_URL."""
    assert public_url("http://u:p@10.0.0.5:2379, http://h2:2379") == "http://10.0.0.5:2379,http://h2:2379"


def test_renew_uses_the_ttl_etcd_grants(etcd: Etcd, cluster: str) -> None:
    """Asked for 1 s, etcd grants its own minimum (2 s at its default election timeout): L is what it granted."""

    async def run() -> None:
        w = witness(etcd, cluster, "server1")
        first = await w.renew(1, T)
        second = await w.renew(1, T)
        await w.aclose()
        assert (first.reachable, first.lease_ttl_s, first.holder, first.holds) == (True, 2.0, None, False)
        assert second.reachable and second.renewed_at is not None and first.renewed_at is not None
        assert second.renewed_at >= first.renewed_at

    asyncio.run(run())


def test_take_creates_the_key_and_its_epoch_is_the_revision(etcd: Etcd, cluster: str) -> None:
    """Promotion on an absent key: one transaction creates it; the epoch is etcd's revision of that write."""

    async def run() -> None:
        w = witness(etcd, cluster, "server1")
        await w.renew(2, T)
        taken = await w.take(1, T)
        report = await w.renew(2, T)
        await w.aclose()
        record = etcd.get(key_for(cluster))
        assert taken.ok, taken.detail
        assert record is not None
        assert record["value"] == {"node_id": "server1", "epoch": taken.epoch}
        assert taken.epoch == record["mod_revision"] == record["create_revision"]
        assert (report.holder, report.holds) == ("server1", True)

    asyncio.run(run())


def test_a_higher_pair_epoch_wins_over_a_lower_revision(etcd: Etcd, cluster: str) -> None:
    """The epoch never goes back: a pair whose epoch is above etcd's revision keeps counting from it."""

    async def run() -> None:
        w = witness(etcd, cluster, "server1")
        await w.renew(2, T)
        taken = await w.take(10**9, T)
        await w.aclose()
        assert taken.ok and taken.epoch == 10**9
        assert etcd.get(key_for(cluster))["value"]["epoch"] == 10**9  # type: ignore[index]

    asyncio.run(run())


def test_the_peer_cannot_take_a_live_key_but_takes_it_once_the_lease_expired(etcd: Etcd, cluster: str) -> None:
    """While server1's lease lives its key is refused to server2; once it lapses, server2 creates it anew."""

    async def run() -> None:
        s1, s2 = witness(etcd, cluster, "server1"), witness(etcd, cluster, "server2")
        await s1.renew(1, T)
        await s2.renew(1, T)
        first = await s1.take(1, T)
        refused = await s2.take(1, T)
        assert first.ok and not refused.ok
        assert "held by server1" in refused.detail
        # server1 stops renewing (it died); server2 keeps renewing and retries every tick, as the arbiter does.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 6
        while loop.time() < deadline:
            await s2.renew(1, T)
            second = await s2.take(first.epoch + 1, T)
            if second.ok:
                break
            await asyncio.sleep(0.1)
        assert second.ok, second.detail
        assert second.epoch > first.epoch
        assert etcd.get(key_for(cluster))["value"] == {"node_id": "server2", "epoch": second.epoch}  # type: ignore[index]
        await s1.aclose()
        await s2.aclose()

    asyncio.run(run())


def test_a_restarted_node_takes_back_the_key_that_names_it(etcd: Etcd, cluster: str) -> None:
    """A key that names this node (its previous life's, still on the old lease) is this node's to take."""

    async def run() -> None:
        old, new = witness(etcd, cluster, "server1"), witness(etcd, cluster, "server1")
        await old.renew(30, T)
        before = await old.take(1, T)
        await new.renew(30, T)
        after = await new.take(before.epoch, T)
        report = await new.renew(30, T)
        await old.aclose()
        await new.aclose()
        assert after.ok and after.epoch > before.epoch
        assert report.holds

    asyncio.run(run())


def test_release_hands_the_key_over_at_once(etcd: Etcd, cluster: str) -> None:
    """Demotion deletes the key (guarded by it still naming us): the peer takes it without waiting for L."""

    async def run() -> None:
        s1, s2 = witness(etcd, cluster, "server1"), witness(etcd, cluster, "server2")
        await s1.renew(30, T)
        await s2.renew(30, T)
        assert (await s1.take(1, T)).ok
        assert await s1.release(T)
        taken = await s2.take(1, T)
        # Releasing a key that now names the peer deletes nothing.
        assert await s1.release(T)
        await s1.aclose()
        await s2.aclose()
        assert taken.ok
        assert etcd.get(key_for(cluster))["value"]["node_id"] == "server2"  # type: ignore[index]

    asyncio.run(run())


def test_a_foreign_value_is_never_overwritten(etcd: Etcd, cluster: str) -> None:
    """A key whose value is not ours (unreadable, or another node's) is refused, never replaced."""
    etcd.put(key_for(cluster), "not json")

    async def run() -> None:
        w = witness(etcd, cluster, "server1")
        await w.renew(30, T)
        taken = await w.take(1, T)
        await w.aclose()
        assert not taken.ok and "held by an unknown value" in taken.detail

    asyncio.run(run())
    kvs = etcd.call("/v3/kv/range", {"key": base64.b64encode(key_for(cluster).encode()).decode()})["kvs"]
    assert base64.b64decode(kvs[0]["value"]) == b"not json"


def test_reassert_recreates_a_lost_key_with_the_same_epoch(etcd: Etcd, cluster: str) -> None:
    """An ACTIVE whose lease lapsed (an outage longer than L) gets a new lease and its key back, same epoch."""

    async def run() -> None:
        w = witness(etcd, cluster, "server1")
        await w.renew(1, T)
        taken = await w.take(1, T)
        etcd.call("/v3/lease/revoke", {"ID": str(w._lease)})  # what etcd does when the lease expires
        report = await w.renew(1, T)
        assert report.reachable and not report.holds and report.holder is None
        again = await w.reassert(taken.epoch, T)
        report = await w.renew(1, T)
        await w.aclose()
        assert again.ok and again.epoch == taken.epoch and report.holds

    asyncio.run(run())


def test_a_new_ttl_moves_the_key_onto_a_new_lease(etcd: Etcd, cluster: str) -> None:
    """When N·I changes, the node grants a lease with the new TTL and moves its key onto it."""

    async def run() -> None:
        w = witness(etcd, cluster, "server1")
        await w.renew(2, T)
        await w.take(1, T)
        old = etcd.get(key_for(cluster))["lease"]  # type: ignore[index]
        report = await w.renew(7, T)
        await w.aclose()
        record = etcd.get(key_for(cluster))
        assert report.lease_ttl_s == 7.0 and report.holds
        assert record is not None and record["lease"] != old

    asyncio.run(run())


def test_fails_over_to_the_next_endpoint(etcd: Etcd, cluster: str) -> None:
    """A dead first endpoint costs nothing but a refused connection: the next one answers."""
    dead = f"http://127.0.0.1:{free_port('127.0.0.1')}"

    async def run() -> None:
        w = witness(etcd, cluster, "server1", urls=f"{dead},{etcd.url}")
        report = await w.renew(2, T)
        taken = await w.take(1, T)
        await w.aclose()
        assert report.reachable and taken.ok

    asyncio.run(run())


def test_no_endpoint_answering_is_unreachable_within_the_budget(tmp_path: Path) -> None:
    """All endpoints dead: renew reports unreachable with the reason, inside its time budget; take refuses."""
    urls = ",".join(f"http://127.0.0.1:{free_port('127.0.0.1')}" for _ in range(2))

    async def run() -> None:
        w = EtcdWitness(urls, cluster="x", node_id="server1")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        budget = 0.5
        report = await w.renew(2, budget)
        took = loop.time() - t0
        taken = await w.take(1, budget)
        await w.aclose()
        assert not report.reachable and report.renewed_at is None and "connection refused" in report.detail
        assert took < budget + 0.5
        assert not taken.ok

    asyncio.run(run())


def test_a_hung_witness_times_out_and_keeps_the_last_renewal(etcd: Etcd, cluster: str) -> None:
    """A frozen etcd (requests hang) is unreachable after the budget; the last renewal time is kept."""

    async def run() -> None:
        w = witness(etcd, cluster, "server1")
        good = await w.renew(30, T)
        etcd.freeze()
        try:
            t0 = asyncio.get_running_loop().time()
            bad = await w.renew(30, T)
            took = asyncio.get_running_loop().time() - t0
        finally:
            etcd.thaw()
        again = await w.renew(30, T)
        await w.aclose()
        assert good.reachable and not bad.reachable and again.reachable
        assert bad.renewed_at == good.renewed_at and took < T + 0.5
        assert again.renewed_at is not None and good.renewed_at is not None and again.renewed_at > good.renewed_at

    asyncio.run(run())
