"""The long exchange, protocol 1: the JSON body of ``POST /peer/heartbeat``, read.

Earlier releases speak only this; every release answers it, and asks in it a peer that answers 404 to the
compact ask (services/arbiter/wire.py is protocol 2). What this node sends in it is
``SelfView.view()``; the answer adds ``t2`` and ``t3``, the ask ``t1``. A reader takes the keys it
knows and ignores the others, so a later release may add keys without breaking an earlier one.
"""

from __future__ import annotations

from typing import Any

from hotstandby.model import PeerView, Role


def view_of(body: dict[str, Any], *, ask: bool = False) -> PeerView:
    """The sender's word about itself (KeyError, TypeError or ValueError when a key is missing or wrong). In an
    ``ask`` (already checked by ``api_models.Heartbeat``) ``lan_ok`` and ``can_be_active`` may be missing: True."""
    def flag(key: str) -> bool:
        return bool(body.get(key, True) if ask else body[key])

    return PeerView(node_id=body["node_id"], role=Role(body["role"]), epoch=int(body["epoch"]), lan_ok=flag("lan_ok"),
                    maintenance=bool(body["maintenance"]["value"]), can_be_active=flag("can_be_active"))


def vouch_of(body: dict[str, Any]) -> tuple[bool, bool]:
    """(serves, app_ok) of a protocol 1 body's ``vouch``; a body without one vouches for nothing."""
    vouch = body.get("vouch")
    if not isinstance(vouch, dict):
        return False, False
    return bool(vouch.get("serves")), bool(vouch.get("app_ok"))


def protocol_of(body: dict[str, Any]) -> int:
    """The highest exchange protocol the sender of a protocol 1 body speaks (1 when it does not say)."""
    value = body.get("protocol")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1
