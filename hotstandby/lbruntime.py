"""HAProxy's runtime API, as the arbiter uses it: which load balancers, what to tell them, what they said.

The arbiter tells each load balancer at the moment it promotes or demotes (``HS_LB_RUNTIME_API``), over
HAProxy's stats socket on TCP (``stats socket ipv4@HOST:PORT level admin``, which ``render haproxy
--runtime-api HOST:PORT`` adds). The health check stays the safety net: nothing said here outlives a
role, so a call that fails leaves HAProxy exactly where the checks put it.

Pure: text in, text out; ``services/arbiter/lbclient.py`` sends it. What a role change says, and why
(checked against HAProxy 2.6):

- promoted: ``state ready`` (undo a drain of our own), ``health up`` for this node, ``health down`` for
  the peer. A forced ``health up`` takes traffic at once; the checks go on, so a node that is not
  really ACTIVE falls back DOWN at its next 503 (``fall 1``).
- planned demotion (a manual switch, a graceful stop): first ``state drain`` while this node is still
  ACTIVE (no new request reaches it: ``nbsrv`` drops to 0 and the hold keeps new requests), then the
  requests it is serving get a short while to finish before the role changes.
- demoted (any cause): ``health down`` (from the CLI it ends no session), ``shutdown sessions server``
  (what ``on-marked-down shutdown-sessions`` does when a check marks a node DOWN: SPEC 11; after a
  drain it finds nothing left to cut), and ``state ready`` (hand the node back to its checks).

Never ``state maint``: it stops the checks, so a failed call later would leave the node out for good.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import NamedTuple

from hotstandby.model import Action, Cause, Decision, NodeState, Role
from hotstandby.settings import split_host_port

BACKEND = "hotstandby"  # the backend `render haproxy` names; its servers are named after the nodes


class Endpoint(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoints(value: str) -> tuple[Endpoint, ...]:
    """``HOST:PORT[,HOST:PORT...]`` (empty: none); ValueError names the entry and the rule."""
    out: list[Endpoint] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            host, port = split_host_port(item)
        except ValueError as exc:
            raise ValueError(f"{item!r}: each load balancer must be HOST:PORT of its stats socket ({exc})") from None
        ep = Endpoint(host.strip("[]"), port)
        if ep in out:
            raise ValueError(f"{item!r} is listed twice")
        out.append(ep)
    return tuple(out)


def socket_line(endpoint: str) -> str:
    """The haproxy.cfg ``global`` line that opens the runtime API at ``HOST:PORT`` (admin level)."""
    try:
        ep = parse_endpoints(endpoint)
    except ValueError as exc:
        raise ValueError(f"runtime_api: {exc}") from None
    if len(ep) != 1:
        raise ValueError("runtime_api: must be one HOST:PORT, the address this HAProxy serves its runtime API on")
    family = "ipv6" if ":" in ep[0].host else "ipv4"
    return f"stats socket {family}@{ep[0]} level admin"


def _server(node_id: str, backend: str) -> str:
    return f"{backend}/{node_id}"


def promoted(node_id: str, peer_id: str, backend: str = BACKEND) -> list[str]:
    """This node became ACTIVE: traffic to it now, none to the peer (the checks still confirm both)."""
    me, peer = _server(node_id, backend), _server(peer_id, backend)
    return [f"set server {me} state ready", f"set server {me} health up", f"set server {peer} health down"]


def draining(node_id: str, backend: str = BACKEND) -> list[str]:
    """A planned demotion is coming: no new request to this node, the ones it serves go on."""
    return [f"set server {_server(node_id, backend)} state drain"]


def demoted(node_id: str, backend: str = BACKEND) -> list[str]:
    """This node became STANDBY: out of the backend, its sessions cut (SPEC 11), back to its checks."""
    me = _server(node_id, backend)
    return [f"set server {me} health down", f"shutdown sessions server {me}", f"set server {me} state ready"]


PLANNED = frozenset({Cause.MANUAL, Cause.SHUTDOWN, Cause.FAILBACK})


def planned_demotion(old: NodeState, d: Decision) -> bool:
    """An ACTIVE node stepping down on purpose: a manual switch (R7, either side asked), a graceful stop
    (R10), a failback (R3), or any handover to the peer. Its requests in flight may finish first; stepping
    down because something failed (R1's command to a peer it thought dead, R4, R5, R8, R12) does not wait."""
    if old.role is not Role.ACTIVE or d.state.role is not Role.STANDBY:
        return False
    return Action.PROMOTE_PEER in d.actions or d.state.cause in PLANNED


def drain_bound_s(interval_s: float, timeout_s: float) -> float:
    """How long a planned demotion waits for the requests in flight: I/2 within [0.25, 0.5] s, and at most
    T/2 (a STANDBY command from the peer, R7, is answered within its T). Short requests end in
    milliseconds and the wait ends with them; only long-lived sessions use it all (they are cut when it
    ends, SPEC 11); R10's 2 s is never at risk."""
    return min(max(interval_s / 2, 0.25), 0.5, timeout_s / 2)


def sessions(backend: str = BACKEND) -> str:
    """The command whose answer :func:`current_sessions` reads (servers of ``backend`` only)."""
    return f"show stat {backend} 4 -1"


def batch(commands: Sequence[str]) -> bytes:
    """Several commands on one connection: HAProxy runs them in order, separated by ``;``."""
    for c in commands:
        if any(ch in c for ch in ";\n\r"):
            raise ValueError(f"a runtime API command cannot hold ';' or a newline: {c!r}")
    return ("; ".join(commands) + "\n").encode()


def problem(answer: str) -> str | None:
    """None when every command of a ``set``/``shutdown`` batch succeeded (they answer nothing), else
    HAProxy's words (``No such server.``, ``Permission denied``, ...)."""
    words = " ".join(line.strip() for line in answer.splitlines() if line.strip())
    return words or None


def current_sessions(answer: str, node_id: str) -> int | None:
    """``scur`` (streams being served) of ``node_id`` in a ``show stat`` answer; None when absent."""
    text = answer.lstrip()
    if not text.startswith("#"):
        return None
    rows = csv.DictReader(io.StringIO(text[1:].lstrip()))
    for row in rows:
        if row.get("svname") == node_id:
            try:
                return int(row.get("scur") or "")
            except ValueError:
                return None
    return None
