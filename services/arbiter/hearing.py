"""What one tick hears from the peer: one exchange for the pair, the monitor probe as its hedge (R2).

The node that needs to know asks: a STANDBY asks every tick (R1 rests on its own asking, never on the
peer's), and so does a node whose peer is not a STANDBY asking it. The ACTIVE counts being asked as its
heartbeat: the STANDBY's latest ask, if it came within I + T, is a valid answer from the peer, carrying
the peer's word about itself; only when none came so recently does the ACTIVE ask itself (the STANDBY
missed a tick, or died: then the ACTIVE's own ask finds out). In a steady pair that is one exchange per
tick for the pair instead of four calls (two probes, two exchanges), and the answering node does no
I/O for it at all. (A window of I + T rather than "since the last tick": the two nodes' ticks drift
against each other, and a tick that fell just before the STANDBY's would otherwise ask for nothing.)

The exchange's answer vouches for the peer's monitor when that monitor serves in the same process
(``hotstandby node``). The probe of the monitor (``mod=NONE``, or ``IPSWS``) is the second channel:
started when the exchange has not brought a valid answer by half of T, or every tick when the peer's
monitor runs apart (then only its own probe speaks for it).

R2, as kept here: for the node that asks, the peer failed the tick only when neither channel brought a
valid answer within T; for the ACTIVE that is asked, when no valid ask came within I + T and its own
ask then failed so.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from hotstandby.model import PeerView, Role
from hotstandby.settings import ClusterSettings
from services.arbiter.exchange import Exchange, Exchanged
from services.arbiter.memory import Memory
from services.arbiter.peer import PeerClient, ProbeResult

PROBE_AFTER = 0.5  # the probe joins an exchange without a valid answer at this part of T


class Heard(NamedTuple):
    ok: bool  # R2: the peer answered validly within T (or, STANDBY, asked us within I + T)
    view: PeerView | None  # what the peer said about itself, None when nothing valid came
    seconds: float  # until the valid answer (or the end of the wait)
    channels: dict[str, dict[str, Any]]  # for status: what each channel did this tick


class Hearing:
    def __init__(self, mem: Memory, *, exchange: Exchange, peer: PeerClient) -> None:
        self.mem, self.exchange, self.peer = mem, exchange, peer
        self.peer_speaks = True  # the peer's answers speak for its monitor (same process); learned from them
        self.exchange_failures = 0

    async def observe(self, cfg: ClusterSettings) -> Heard:
        mem = self.mem
        start = mem.clock()
        ask = self.exchange.last_ask()
        fresh = ask is not None and start - ask.at <= cfg.heartbeat_interval_s + cfg.heartbeat_timeout_s
        if ask is not None and fresh and mem.state.role is Role.ACTIVE and ask.view.role is Role.STANDBY:
            self.exchange_failures = 0
            self.peer_speaks = ask.speaks
            if ask.speaks:  # its monitor serves in the asking process: the ask says what a probe would
                return Heard(ask.vouched, ask.view, 0.0, self._channels("asked", ask.vouched, None))
            probe = await self.peer.probe()  # its monitor runs apart: only its own probe speaks for it
            return Heard(probe.ok, ask.view, probe.seconds, self._channels("asked", True, probe))
        return await self._ask(cfg, start)

    async def _ask(self, cfg: ClusterSettings, start: float) -> Heard:
        mem, budget = self.mem, cfg.heartbeat_timeout_s
        probe: asyncio.Task[ProbeResult] | None = None

        def hedge(left: float) -> asyncio.Task[ProbeResult]:
            nonlocal probe
            if probe is None:
                probe = asyncio.ensure_future(self.peer.probe(budget=left))
            return probe

        if not self.peer_speaks:
            hedge(budget)
            timer = None
        else:  # the second channel joins at half of T, inside what is left of T (a timer: no task a tick)
            timer = asyncio.get_running_loop().call_later(PROBE_AFTER * budget, hedge, (1 - PROBE_AFTER) * budget)
        exchanged = await self.exchange.exchange_full(cfg)
        if timer is not None:
            timer.cancel()
        if probe is None and not _settled(exchanged):
            hedge(max(budget - (mem.clock() - start), PROBE_AFTER * budget))
        # A probe still running when the exchange vouched is left to finish on its own (its lane keeps it).
        probed = await probe if probe is not None and not exchanged.vouched else None
        if exchanged.view is not None:
            self.peer_speaks = exchanged.speaks
            self.exchange_failures = 0
        else:
            self.exchange_failures += 1
        ok = exchanged.vouched or (probed is not None and probed.ok)
        return Heard(ok, exchanged.view, mem.clock() - start, self._channels("asking", exchanged.view is not None,
                                                                              probed))

    def _channels(self, by: str, exchange_ok: bool, probe: ProbeResult | None) -> dict[str, dict[str, Any]]:
        return {
            "exchange": {"ok": exchange_ok, "consecutive_failures": self.exchange_failures, "by": by,
                         "protocol": self.exchange.protocol},
            "probe": ({"ok": None, "seconds": None, "detail": "not needed: the exchange spoke for the monitor"}
                      if probe is None else
                      {"ok": probe.ok, "seconds": round(probe.seconds, 4), "detail": probe.detail}),
        }


def _settled(x: Exchanged) -> bool:
    """The exchange's answer settles the tick: it came, and it speaks for the peer's monitor (vouching for
    it, or saying its application fails, which is what an IPSWS probe would say too)."""
    return x.view is not None and x.speaks
