"""What the arbiter remembers between ticks, shared by its parts.

The core's ``NodeState`` (role, epoch, cause, counters), the facts around it that only the edges
know (since when we hold the role, the LAN, whether the database takes writes, the tick's last
sentence), the lock every role change holds, and ``version``, bumped by every commit and every
confirmation from the peer so that a tick whose observations predate one does not act on them.
``say()`` is the one writer of the fault-tolerant log's ``Arbiter`` lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.metrics import ArbiterMetrics
from hotstandby.model import NodeState
from hotstandby.settings import ClusterSettings, NodeSettings
from services.arbiter.config import ConfigBook
from services.arbiter.journal import Journal

log = logging.getLogger("hotstandby.arbiter")


class Memory:
    def __init__(self, *, node: NodeSettings, config: ConfigBook, ftlog: FaultTolerantLog, metrics: ArbiterMetrics,
                 state: NodeState, clock: Callable[[], float], wall: Callable[[], float], journal: Journal) -> None:
        self.node, self.config, self.ftlog, self.metrics = node, config, ftlog, metrics
        self.journal = journal  # the history and the hook's events (SPEC 13)
        self.clock, self.wall = clock, wall
        self.state = state
        self.lock = asyncio.Lock()  # held by every role change: a tick's decision, a command, the stop
        self.version = 0  # bumped by every commit and peer confirmation: a tick's observations expire
        self.role_since = wall()
        self.lan_ok: bool | None = None  # None: no LAN probes configured
        self.store_problem: str | None = None  # why the database refuses writes, or None
        self.last_reason = "starting: STANDBY until the first tick decides"
        self.gauges_set: tuple[tuple[int, ...], ClusterSettings] | None = None  # what update_gauges last set

    @property
    def cluster(self) -> ClusterSettings:
        return self.config.current

    def say(self, line: str) -> None:
        """One line of the fault-tolerant log, component ``Arbiter``."""
        self.ftlog.write("Arbiter", line)

    def cluster_epoch(self) -> int:
        return max(self.state.epoch, self.state.peer.epoch if self.state.peer else 0)
