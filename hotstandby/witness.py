"""The witness (SPEC 12): a small etcd v3 client over its JSON gateway, at the edge of the arbiter.

The ACTIVE node holds ``/hotstandby/<cluster>/active`` = ``{"node_id": ..., "epoch": ...}`` bound to
an etcd lease. Each node keeps one lease of its own alive every tick (so both know whether the
witness answers); the key is written only in guarded transactions:

- take (promotion): create the key when absent (``create_revision == 0``: a lease that expired has
  taken its key with it), or replace it when its value names this node (a previous life of ours);
  the new epoch is etcd's revision of that write, a fencing token;
- reassert (an ACTIVE whose key vanished, e.g. during a witness outage): the same guards, same epoch;
- release (demotion): delete the key if it still names us, so the peer can take it at once (the
  handover; without it the peer waits for our lease to expire).

Nothing here decides anything: the arbiter feeds a ``WitnessReport`` into the pure rules.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from hotstandby.http1 import Connection, HttpError

USER_AGENT = "hotstandby-witness"
NOT_CONTACTED = "not contacted yet"  # a report's detail before the first renewal


class WitnessError(Exception):
    """No endpoint gave a valid answer within the budget: the witness is unreachable."""


@dataclass(frozen=True)
class Holder:
    """Who the key names, as etcd last told us."""

    node_id: str | None  # None: a value we cannot read (not ours to take)
    epoch: int | None
    lease: int
    mod_revision: int


@dataclass(frozen=True)
class WitnessReport:
    """One tick's look at the witness: the edge fills it, the rules read it."""

    reachable: bool
    renewed_at: float | None = None  # clock() when the last successful renewal was *sent* (etcd's expiry is later)
    lease_ttl_s: float | None = None  # L: the TTL etcd granted
    holder: str | None = None  # node_id the key names; None: nobody holds it (or not read yet)
    holds: bool = False  # the key names this node and is bound to this node's live lease
    detail: str = ""  # why it is unreachable, or what was found


@dataclass(frozen=True)
class Taken:
    ok: bool
    epoch: int  # the epoch written into the key (meaningful only when ok)
    detail: str  # why it failed, or at which revision it was taken


class Witness(Protocol):
    """What the arbiter needs from a witness; ``None`` in its place means no witness (SPEC 12 off)."""

    @property
    def url(self) -> str: ...
    def last(self) -> WitnessReport: ...
    async def renew(self, ttl_s: int, timeout: float) -> WitnessReport: ...
    async def take(self, epoch_floor: int, timeout: float) -> Taken: ...
    async def reassert(self, epoch: int, timeout: float) -> Taken: ...
    async def release(self, timeout: float) -> bool: ...
    async def aclose(self) -> None: ...


def lease_ttl_request(failures_to_switch: int, interval_s: float) -> int:
    """max(N·I, 1 s), in the whole seconds etcd takes (it may grant more: its own minimum)."""
    return max(1, math.ceil(failures_to_switch * interval_s - 1e-9))


def key_for(cluster: str) -> str:
    return f"/hotstandby/{cluster}/active"


def public_url(urls: str) -> str:
    """The endpoint list without any user:password, for status and logs."""
    out = []
    for u in urls.split(","):
        parts = urlsplit(u.strip())
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        out.append(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    return ",".join(out)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _value(node_id: str, epoch: int) -> str:
    return json.dumps({"node_id": node_id, "epoch": epoch}, separators=(",", ":"))


def _holder(kv: dict[str, Any]) -> Holder:
    lease, rev = int(kv.get("lease", 0)), int(kv.get("mod_revision", 0))
    try:
        data = json.loads(base64.b64decode(kv.get("value", "")))
        node_id, epoch = data.get("node_id"), data.get("epoch")
        return Holder(node_id if isinstance(node_id, str) else None,
                      epoch if isinstance(epoch, int) else None, lease, rev)
    except (ValueError, AttributeError):
        return Holder(None, None, lease, rev)


class _Link:
    """One etcd endpoint: kept-alive connections (a second one only while the first is busy), HTTP Basic
    when the URL carries a user, TLS with the system's CAs for ``https``."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.tls = ssl.create_default_context() if parts.scheme == "https" else None
        self.headers = {"user-agent": USER_AGENT, "content-type": "application/json"}
        if parts.username is not None:
            creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.headers["authorization"] = "Basic " + base64.b64encode(creds).decode()
        self._idle: list[Connection] = []

    async def post(self, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        conn = self._idle.pop() if self._idle else Connection(self.tls)
        r = await conn.request(self.host, self.port, "POST", self.prefix + path, body=body, headers=self.headers,
                               timeout=timeout)  # HttpError closes it: dropped
        if conn.open:
            self._idle.append(conn)
        return r.status, r.body

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class EtcdWitness:
    """An etcd v3 cluster through its gRPC gateway (``/v3/...``), endpoints tried in turn."""

    def __init__(self, urls: str, *, cluster: str, node_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoints = [u.strip().rstrip("/") for u in urls.split(",") if u.strip()]
        if not self.endpoints:
            raise ValueError("HS_WITNESS_URL: no endpoint")
        self._url = public_url(urls)
        self._links = [_Link(u) for u in self.endpoints]
        self.key, self.node_id, self.clock = key_for(cluster), node_id, clock
        self._current = 0  # the endpoint that answered last: tried first next time
        self._lease: int | None = None
        self._lease_asked: int | None = None
        self._granted: float | None = None
        self._report = WitnessReport(reachable=False, detail=NOT_CONTACTED)
        self._writes = 0  # our own key writes (take, reassert, release) so far

    @property
    def url(self) -> str:
        return self._url

    def last(self) -> WitnessReport:
        return self._report

    async def aclose(self) -> None:
        for link in self._links:
            link.close()

    # -- transport: one JSON call, failing over between endpoints inside one time budget ------
    async def _call(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        deadline = self.clock() + timeout
        errors: list[str] = []
        n = len(self.endpoints)
        for i in range(n):
            index = (self._current + i) % n
            left = deadline - self.clock()
            if left <= 0:
                break
            # Share what is left among the endpoints not tried yet: a hung one must not eat the budget.
            budget = max(left / (n - i), min(left, 0.05))
            try:
                status, answer = await self._links[index].post(path, json.dumps(body).encode(), budget)
                if status >= 500:
                    raise WitnessError(f"HTTP {status}")
                data = json.loads(answer)  # not JSON (a wrong URL, a proxy's page): ValueError, try the next endpoint
                if not isinstance(data, dict):
                    raise WitnessError("not an etcd answer")
                if status != 200:  # a refused request (e.g. no such lease): etcd answered, the caller reads it
                    data = {"error": data.get("error") or data.get("message") or f"HTTP {status}"}
                self._current = index
                return data
            except HttpError as exc:  # its text names what happened: refused, reset, timed out
                errors.append(f"{self.endpoints[index]}: {exc}")
            except (ValueError, WitnessError) as exc:
                errors.append(f"{self.endpoints[index]}: {type(exc).__name__}{f' {exc}' if str(exc) else ''}")
        raise WitnessError("; ".join(errors) or f"no answer within {timeout:g} s")

    async def _range(self, timeout: float) -> tuple[Holder | None, int]:
        data = await self._call("/v3/kv/range", {"key": _b64(self.key)}, timeout)
        kvs = data.get("kvs") or []
        return (_holder(kvs[0]) if kvs else None), int(data.get("header", {}).get("revision", 0))

    async def _txn(self, compare: dict[str, Any], success: list[dict[str, Any]], timeout: float) -> int | None:
        """One guarded transaction: the revision after it when the guard held, else None."""
        data = await self._call("/v3/kv/txn", {"compare": [compare], "success": success}, timeout)
        if "error" in data:
            raise WitnessError(f"transaction refused: {data['error']}")
        return int(data["header"]["revision"]) if data.get("succeeded") else None

    async def read_key(self, timeout: float) -> Holder | None:
        """Who holds the key now, read only (no lease, no write): for `hotstandby check`."""
        return (await self._range(timeout))[0]

    def _guard(self, holder: Holder | None) -> dict[str, Any]:
        k = _b64(self.key)
        if holder is None:  # absent: only create, never overwrite what someone else wrote meanwhile
            return {"target": "CREATE", "key": k, "result": "EQUAL", "createRevision": "0"}
        return {"target": "MOD", "key": k, "result": "EQUAL", "modRevision": str(holder.mod_revision)}

    def _put(self, epoch: int, lease: int) -> dict[str, Any]:
        return {"requestPut": {"key": _b64(self.key), "value": _b64(_value(self.node_id, epoch)), "lease": str(lease)}}

    # -- the lease: one per node, renewed every tick ----------------------------------------
    async def _grant(self, ttl_s: int, timeout: float) -> None:
        data = await self._call("/v3/lease/grant", {"TTL": str(ttl_s)}, timeout)
        if data.get("error") or int(data.get("TTL", 0)) <= 0:
            raise WitnessError(f"lease not granted: {data.get('error', data)}")
        old, self._lease, self._lease_asked = self._lease, int(data["ID"]), ttl_s
        self._granted = float(data["TTL"])
        if old is not None:
            # I or N changed: move the key (if we hold it) onto the new lease, then drop the old one.
            holder, _ = await self._range(timeout)
            if holder is not None and holder.lease == old and holder.node_id == self.node_id:
                await self._txn(self._guard(holder), [self._put(holder.epoch or 0, self._lease)], timeout)
            with contextlib.suppress(WitnessError):  # best effort: unrevoked, it lapses after its TTL
                await self._call("/v3/lease/revoke", {"ID": str(old)}, timeout)

    async def renew(self, ttl_s: int, timeout: float) -> WitnessReport:
        """Keep our lease alive (grant one when there is none, it lapsed, or L must change), read the key."""
        sent = self.clock()
        prev, writes = self._report, self._writes
        try:
            if self._lease is None or self._lease_asked != ttl_s:
                await self._grant(ttl_s, timeout)
            else:
                data = await self._call("/v3/lease/keepalive", {"ID": str(self._lease)}, timeout)
                ttl = int(data.get("result", {}).get("TTL", 0))
                if ttl <= 0:  # etcd no longer knows it: it expired (and took any key of ours with it)
                    self._lease = None
                    await self._grant(ttl_s, max(timeout - (self.clock() - sent), 0.05))
                else:
                    self._granted = float(ttl)
            holder, _ = await self._range(max(timeout - (self.clock() - sent), 0.05))
        except WitnessError as exc:
            self._report = WitnessReport(False, prev.renewed_at, prev.lease_ttl_s, prev.holder, False, str(exc))
            return self._report
        if self._writes != writes:  # a take or release landed while we read: keep what it wrote
            holder_id, holds = self._report.holder, self._report.holds
        else:
            holder_id = holder.node_id if holder else None
            holds = holder is not None and holder.node_id == self.node_id and holder.lease == self._lease
        self._report = WitnessReport(True, sent, self._granted, holder_id, holds, "ok")
        return self._report

    # -- the key ------------------------------------------------------------------------------
    async def take(self, epoch_floor: int, timeout: float) -> Taken:
        """Promotion: take the key in one guarded transaction; the epoch becomes etcd's revision."""
        return await self._take(timeout, epoch_floor, exact=False)

    async def reassert(self, epoch: int, timeout: float) -> Taken:
        """An ACTIVE whose key is gone (a lease lost during an outage): take it back, same epoch."""
        return await self._take(timeout, epoch, exact=True)

    async def _take(self, timeout: float, epoch: int, *, exact: bool) -> Taken:
        if self._lease is None:
            return Taken(False, 0, "no lease: the witness has not answered yet")
        try:
            holder, revision = await self._range(timeout)
            if holder is not None and holder.node_id != self.node_id:
                return Taken(False, 0, f"the witness key is held by {holder.node_id or 'an unknown value'} "
                                       f"(epoch {holder.epoch}) and its lease has not expired")
            # The next write gets revision + 1 unless someone else writes in between: predict it, so
            # the value carries the fencing token; fix it below in the rare case the guess missed.
            new = epoch if exact else max(epoch, revision + 1)
            got = await self._txn(self._guard(holder), [self._put(new, self._lease)], timeout)
            if got is None:
                return Taken(False, 0, "the witness key changed while we took it")
            if not exact and got > new:
                new = got
                await self._txn({"target": "MOD", "key": _b64(self.key), "result": "EQUAL",
                                 "modRevision": str(got)}, [self._put(new, self._lease)], timeout)
        except WitnessError as exc:
            return Taken(False, 0, f"the witness is unreachable ({exc})")
        self._wrote(self.node_id)
        return Taken(True, new, f"took the witness key at revision {got}")

    async def release(self, timeout: float) -> bool:
        """Demotion: delete the key if it still names us, so the peer takes it without waiting for L."""
        try:
            holder, _ = await self._range(timeout)
            if holder is None or holder.node_id != self.node_id:
                return True
            done = await self._txn(self._guard(holder), [{"requestDeleteRange": {"key": _b64(self.key)}}], timeout)
        except WitnessError:
            return False
        if done is not None:
            self._wrote(None)
        return done is not None

    def _wrote(self, holder: str | None) -> None:
        """Our own write is the freshest word on the key; a renewal whose read began before it must
        not put the older holder back (the tick would then re-take or release the key for nothing)."""
        self._writes += 1
        r = self._report
        self._report = WitnessReport(True, r.renewed_at, r.lease_ttl_s, holder, holder == self.node_id, "ok")


__all__ = [
    "NOT_CONTACTED",
    "EtcdWitness",
    "Holder",
    "Taken",
    "Witness",
    "WitnessError",
    "WitnessReport",
    "key_for",
    "lease_ttl_request",
    "public_url",
]
