"""The compact exchange, protocol 2: what one ask (``POST /peer/hb``) and its answer carry.

One short JSON object each way, the same shape in both directions (a node's word about itself):

    {"v":2,"n":"server2","r":"S","e":12,"f":15,"m":[[1796165172064,3],"server2"],"d":"0123456789abcdef",
     "h":[1796165172064,0],"s":1796165172.064,"t":[1796165172.064]}

    v  protocol version (2); a node reads the keys it knows and ignores the others, so a later
       version may add keys without breaking this one
    n  node_id                       r  role, "A" (ACTIVE) or "S" (STANDBY)
    e  epoch                         f  flags: 1 can be ACTIVE, 2 LAN ok, 4 its monitor serves from this
                                        process, 8 its application self-check passes, 16 maintenance on
    m  the maintenance flag's stamp: [hybrid clock [ms, counter], origin node]
    d  settings digest               h  the sender's hybrid clock [ms, counter]
    s  role_since, epoch seconds     t  the ask: [t1]; the answer: [t2, t3] (skew, NTP-style)
    x  (ask only, when known) the asker's last measured skew, peer minus own, so the answering node
       exports it too

Version 1 is the long JSON of ``POST /peer/heartbeat`` (services/arbiter/longform.py),
which every release keeps answering: see the README's "Rolling upgrades".
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from hotstandby.hlc import Timestamp
from hotstandby.model import PeerView, Role

PROTOCOL = 2
PATH = "/peer/hb"
MAX_EPOCH = 2**53 - 1  # JSON-safe integers, as for the long form
MAX_WALL_MS = 253_402_300_800_000  # 10000-01-01: a hybrid clock stamp must stay printable (hotstandby.hlc)
CAN_BE_ACTIVE, LAN_OK, SERVES, APP_OK, MAINTENANCE = 1, 2, 4, 8, 16
_ROLES = {"A": Role.ACTIVE, "S": Role.STANDBY}
_LETTER = {Role.ACTIVE: "A", Role.STANDBY: "S"}
_NODE = re.compile(r"^server[12]$")
_DIGEST = re.compile(r"^[0-9a-f]{1,64}$")


_STAMP = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2,
          "description": "hybrid clock: [milliseconds since the epoch, counter]"}
SCHEMA: dict[str, Any] = {  # for the OpenAPI of POST /peer/hb (the answer has the same shape, t = [t2, t3])
    "type": "object", "required": ["v", "n", "r", "e", "f", "m", "d", "h", "t"],
    "properties": {
        "v": {"type": "integer", "minimum": 1, "description": "protocol version (2)"},
        "n": {"type": "string", "enum": ["server1", "server2"], "description": "node_id"},
        "r": {"type": "string", "enum": ["A", "S"], "description": "role: ACTIVE or STANDBY"},
        "e": {"type": "integer", "minimum": 0, "maximum": 2**53 - 1, "description": "epoch"},
        "f": {"type": "integer", "minimum": 0, "description": "flags: 1 can be ACTIVE, 2 LAN ok, 4 monitor in "
              "this process, 8 application ok, 16 maintenance"},
        "m": {"type": "array", "minItems": 2, "maxItems": 2, "items": {}, "description": "maintenance stamp: "
              "[hybrid clock, origin node]"},
        "d": {"type": "string", "pattern": "^[0-9a-f]{1,64}$", "description": "settings digest"},
        "h": _STAMP,
        "s": {"type": ["number", "null"], "description": "role_since, epoch seconds"},
        "t": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 2,
              "description": "ask: [t1]; answer: [t2, t3]"},
        "x": {"type": "number", "description": "the asker's last measured clock skew, peer minus own"},
    },
}


class WireError(ValueError):
    """A compact body that cannot be read: the text names the field (the answer's 422)."""


@dataclass(frozen=True)
class Beat:
    """One node's word about itself, as one compact exchange carries it."""

    node_id: str
    role: Role
    epoch: int
    can_be_active: bool
    lan_ok: bool
    serves: bool  # its monitor serves from the same process, so this answer speaks for it (R2)
    app_ok: bool  # its application self-check passes (what mod=IPSWS would say)
    maintenance: bool
    maintenance_at: Timestamp
    maintenance_origin: str
    digest: str
    hlc: Timestamp
    role_since: float | None
    times: tuple[float, ...]  # the ask: (t1,); the answer: (t2, t3)
    skew: float | None = None  # the asker's last measured skew (peer minus own), or None

    @property
    def flags(self) -> int:
        return ((CAN_BE_ACTIVE if self.can_be_active else 0) | (LAN_OK if self.lan_ok else 0)
                | (SERVES if self.serves else 0) | (APP_OK if self.app_ok else 0)
                | (MAINTENANCE if self.maintenance else 0))

    @property
    def view(self) -> PeerView:
        """The node's word as the core reads it."""
        return PeerView(node_id=self.node_id, role=self.role, epoch=self.epoch, lan_ok=self.lan_ok,
                        maintenance=self.maintenance, can_be_active=self.can_be_active)


def encode(b: Beat) -> bytes:
    body: dict[str, Any] = {
        "v": PROTOCOL, "n": b.node_id, "r": _LETTER[b.role], "e": b.epoch, "f": b.flags,
        "m": [[b.maintenance_at.wall_ms, b.maintenance_at.counter], b.maintenance_origin], "d": b.digest,
        "h": [b.hlc.wall_ms, b.hlc.counter], "s": None if b.role_since is None else round(b.role_since, 3),
        "t": [round(t, 3) for t in b.times],
    }
    if b.skew is not None:
        body["x"] = round(b.skew, 4)
    return json.dumps(body, separators=(",", ":")).encode()


def decode(raw: bytes) -> Beat:
    """The inverse of ``encode``; WireError naming the first field that is missing or wrong."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"body: not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise WireError("body: not a JSON object")
    version = _int(body, "v", 1, 2**31)
    del version  # any version: the keys this one knows are read, the others ignored
    node = _get(body, "n", str)
    if not _NODE.match(node):
        raise WireError("n: node_id must be server1 or server2")
    role = _ROLES.get(_get(body, "r", str))
    if role is None:
        raise WireError("r: role must be A or S")
    flags = _int(body, "f", 0, 2**31)
    stamp = _get(body, "m", list)
    if len(stamp) != 2 or not isinstance(stamp[1], str) or len(stamp[1]) > 64:
        raise WireError("m: must be [[ms, counter], origin]")
    digest = _get(body, "d", str)
    if not _DIGEST.match(digest):
        raise WireError("d: digest must be 1-64 lower-case hex digits")
    since = body.get("s")
    if since is not None and not _finite(since):
        raise WireError("s: role_since must be a number or null")
    times = _get(body, "t", list)
    if not 1 <= len(times) <= 2 or not all(_finite(t) for t in times):
        raise WireError("t: must be 1 or 2 numbers")
    skew = body.get("x")
    if skew is not None and not _finite(skew):
        raise WireError("x: skew must be a number")
    return Beat(node_id=node, role=role, epoch=_int(body, "e", 0, MAX_EPOCH), can_be_active=bool(flags & CAN_BE_ACTIVE),
                lan_ok=bool(flags & LAN_OK), serves=bool(flags & SERVES), app_ok=bool(flags & APP_OK),
                maintenance=bool(flags & MAINTENANCE), maintenance_at=_stamp(stamp[0], "m"),
                maintenance_origin=stamp[1], digest=digest, hlc=_stamp(_get(body, "h", list), "h"),
                role_since=None if since is None else float(since), times=tuple(float(t) for t in times),
                skew=None if skew is None else float(skew))


def _get(body: dict[str, Any], key: str, kind: type) -> Any:
    if key not in body:
        raise WireError(f"{key}: missing")
    value = body[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WireError(f"{key}: must be {'a ' + kind.__name__ if kind is not list else 'a list'}")
    return value


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int:
    value = _get(body, key, int)
    if not low <= value <= high:
        raise WireError(f"{key}: must be in {low}..{high}")
    return int(value)


def _stamp(value: Any, key: str) -> Timestamp:
    ok = (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                  for v in value)
          and 0 <= value[0] < MAX_WALL_MS and 0 <= value[1] < 2**31)
    if not ok:
        raise WireError(f"{key}: hybrid clock must be [ms, counter]")
    return Timestamp(value[0], value[1])


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
