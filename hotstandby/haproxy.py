"""Render a complete haproxy.cfg from the cluster settings (SPEC section 11).

Two modes:

``follow-role`` (default): both nodes sit in one backend and HAProxy checks
``mod=FT``, which answers 200 only on the ACTIVE node (503 on the STANDBY), so
the VIP routes to whichever node the arbiters made ACTIVE. The check timing is
derived in :func:`check_timing`.

``vendor``: the vendor guide's setup. HAProxy checks plain liveness (``mod=NONE``,
or ``mod=IPSWS`` with switch_on_application_error), ``fall = rise = N``,
``inter = I``, ``timeout check = T``, and server2 is a ``backup``: the load
balancer decides on its own, which can disagree with the arbiters for up to N·I.

Pure: settings in, text out (:func:`write_config` alone writes files, for the demo and the
bench). The CLI (``hotstandby render haproxy``), the demo and the deploy files call
:func:`render_haproxy`; tests run ``haproxy -c`` on it.
"""

from __future__ import annotations

import ipaddress
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Literal, NamedTuple

from hotstandby import lbruntime
from hotstandby.settings import ClusterSettings, split_host_port

Mode = Literal["follow-role", "vendor"]
MODES: tuple[Mode, ...] = ("follow-role", "vendor")

DEFAULT_VIP = "127.0.0.10:8080"
MONITOR_PATH = "/IPSCFG/admin/monitor.aspx"

HOLD_LUA = "haproxy_hold.lua"  # the Lua action `--hold-lua` loads, shipped in this package
CONTAINER_HOLD_LUA = "/usr/local/etc/haproxy/hold.lua"  # where compose and the chart mount it
# A held request waits at most this long for a node: past it a client is better off with a 503.
_HOLD_MAX_MS = 10_000

# follow-role check interval bounds: below 100 ms checks cost more than they buy (the
# arbiters themselves decide no faster than I), above 2 s the VIP could not follow
# within the 2 s the spec promises at any profile.
_INTER_MIN_MS = 100
_INTER_MAX_MS = 2000
_TURN_MIN_MS, _TURN_MAX_MS = 25, 250  # the retry turn-around (timeout connect), see retry_timing


class CheckTiming(NamedTuple):
    """HAProxy server-check parameters (milliseconds) and the worst case they imply."""

    inter_ms: int
    fastinter_ms: int | None
    downinter_ms: int | None
    timeout_ms: int
    rise: int
    fall: int

    def worst_mark_down_ms(self) -> int:
        """A fully UP server that starts failing: first failure after ``inter``, then
        ``fall - 1`` more at ``fastinter``; each check may take up to ``timeout``."""
        fast = self.fastinter_ms or self.inter_ms
        return self.inter_ms + (self.fall - 1) * fast + self.fall * self.timeout_ms

    def worst_mark_up_ms(self) -> int:
        """A fully DOWN server that starts passing: first success after ``downinter``,
        then ``rise - 1`` more at ``fastinter``. A passing check answers fast, so the
        timeout is not added (a local HTTP answer is a few ms)."""
        down = self.downinter_ms or self.inter_ms
        fast = self.fastinter_ms or self.inter_ms
        return down + (self.rise - 1) * fast

    def worst_follow_ms(self) -> int:
        """Worst time for the VIP to move after a role change: the old node marked
        DOWN and the new one marked UP (both run in parallel, so the larger one)."""
        return max(self.worst_mark_down_ms(), self.worst_mark_up_ms())


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def check_timing(cluster: ClusterSettings, mode: Mode = "follow-role", *, told: bool = False) -> CheckTiming:
    """Derive the check parameters from I (interval), T (timeout) and N (failures).

    follow-role: the role change has already been confirmed by the arbiters (N probes,
    R1..R8), and the STANDBY answers 503 deterministically, so the load balancer must
    not debounce a second time; it only has to notice the change quickly.

    - ``inter = clamp(I/4, 100 ms, 2 s)``: four LB checks per arbiter tick. The arbiter
      cannot change roles faster than once per I, so checking more often than I/4 buys
      nothing; 2 s caps it so even the vendor default (I = 30 s) follows within ~4 s.
    - ``fastinter = downinter = inter``: the pace is already fast; a separate
      transition pace would only make the worst case harder to reason about.
    - ``timeout check = min(T, inter)``: a hung node must fail its check before the
      next one is due (HAProxy also caps the check's connect at min(timeout connect,
      inter)). T is the operator's own "a probe longer than this is a failure".
    - ``fall 1``: one 503 (or refused/timed-out check) marks the old ACTIVE DOWN. In
      follow-role both nodes are ordinary servers, so while the old one stays UP it
      keeps getting traffic; it has to go at the first sign.
    - ``rise 2``: the new ACTIVE needs two 200s, i.e. at least ``fastinter`` after its
      first one. The arbiters demote the old node before promoting the new one (R7:
      no overlap), so by then the old one has had a full ``inter`` to be marked DOWN:
      the two nodes are (almost) never both UP, which round-robin would split.

    Fast profile (I = 1 s, T = 1 s, N = 3): inter = fastinter = downinter = 250 ms,
    timeout check = 250 ms. Old node DOWN within 250 + 250 = 500 ms, new node UP
    within 250 + 250 = 500 ms: the VIP follows within 0.5 s (spec: 2 s).

    ``told`` (``--runtime-api``: the arbiters tell HAProxy of each role change): ``fall 2``. The
    arbiters take the old ACTIVE out themselves; what the checks must not do is throw the new ACTIVE out
    on a check that was in flight when it was promoted (its 503 predates the role change, and with
    ``fall 1`` it would mark the node DOWN and cut the requests just sent to it). When a call fails, the
    checks alone need one more ``fastinter`` to drop the old node.

    vendor: the vendor guide verbatim, ``inter = I``, ``timeout = T``,
    ``fall = rise = N``, no separate transition pace.
    """
    interval_ms = _ms(cluster.heartbeat_interval_s)
    timeout_ms = _ms(cluster.heartbeat_timeout_s)
    if mode == "vendor":
        n = cluster.failures_to_switch
        return CheckTiming(interval_ms, None, None, timeout_ms, rise=n, fall=n)
    inter = min(max(interval_ms // 4, _INTER_MIN_MS), _INTER_MAX_MS)
    return CheckTiming(inter, inter, inter, min(timeout_ms, inter), rise=2, fall=2 if told else 1)


def retry_timing(timing: CheckTiming) -> tuple[int, int]:
    """(``timeout connect`` in ms, ``retries``). HAProxy retries a failed connect after a turn-around of
    min(timeout connect, 1 s); with ``option redispatch 1`` every retry is dispatched afresh, so a request
    caught on a node that just died waits at most one turn-around after HAProxy learns the node is down
    (with the runtime API, the moment of the promotion; by default it stayed on the dead node until the
    last retry, two turn-arounds and more). The turn-around is a quarter of the check interval,
    25..250 ms (a LAN connects in well under a millisecond), and the retries cover what three retries at
    min(max(inter, 100 ms), 1 s) covered before (``python -m bench.turnaround`` measures both)."""
    turn = min(max(timing.inter_ms // 4, _TURN_MIN_MS), _TURN_MAX_MS)
    cover = 3 * min(max(timing.inter_ms, 100), 1000)
    return turn, -(-cover // turn)


def hold_ms(cluster: ClusterSettings, mode: Mode = "follow-role", *, told: bool = False) -> int:
    """How long HAProxy holds a request while no node is UP: a whole failover (the R1 bound,
    N·I + T + I) plus the load balancer's worst follow, at least 1 s, at most 10 s. A planned
    switchover (R7) needs far less (the target is UP a few check intervals after the old node
    went DOWN); a crash needs the whole window."""
    interval_ms, timeout_ms = _ms(cluster.heartbeat_interval_s), _ms(cluster.heartbeat_timeout_s)
    window = (cluster.failures_to_switch + 1) * interval_ms + timeout_ms
    return min(max(window + check_timing(cluster, mode, told=told).worst_follow_ms(), 1000), _HOLD_MAX_MS)


def hold_lua() -> str:
    """The Lua source to install at the path given to ``render_haproxy(hold_lua=...)``."""
    return resources.files("hotstandby").joinpath(HOLD_LUA).read_text()


def check_path(cluster: ClusterSettings, mode: Mode = "follow-role") -> str:
    """The monitor URL HAProxy probes: role (FT) in follow-role, liveness in vendor mode."""
    if mode == "follow-role":
        return f"{MONITOR_PATH}?mod=FT"
    mod = "IPSWS" if cluster.switch_on_application_error else "NONE"
    return f"{MONITOR_PATH}?mod={mod}"


def _addr(host: str, port: int) -> str:
    """``host:port`` the way HAProxy reads it (IPv6 literals bracketed)."""
    bare = host.strip("[]")
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


_TEMPLATE = Template(
    """\
# haproxy.cfg rendered by hotstandby (mode: $mode). Do not edit by hand:
# regenerate with `hotstandby render haproxy` after changing the cluster settings.
# Settings: I=${interval_s}s T=${timeout_s}s N=$failures; check $check_path
# Worst case for the VIP to follow a node change: ${worst_ms} ms.
global
    log stdout format raw local0 info
    maxconn 4096$lua_load$runtime_api

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option log-health-checks
    # A connection to a node that just went away is retried, each retry dispatched afresh (to the other
    # node once this one is DOWN), after a turn-around of min(timeout connect, 1 s): a short one, and
    # retries enough to outlast the old node's checks.
    option redispatch 1
    retries $retries
    timeout connect ${connect_ms}ms
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 2s
    timeout queue 5s
$resolvers
frontend vip
    bind $vip_bind$hold
    default_backend hotstandby

backend hotstandby
    balance roundrobin
    # Role answers are status codes: `expect string ACTIVE` would also match INACTIVE.
    option httpchk GET $check_path
    http-check expect status 200
    timeout check ${timeout_ms}ms
    # init-addr: start even if a node name does not resolve yet (containers, pods).
    default-server check port $monitor_port inter ${inter_ms}ms$fast_opts rise $rise fall $fall \
on-marked-down shutdown-sessions$marked_up init-addr last,libc,none$resolve_opts$tls_opts
    server server1 $server1
    server server2 $server2$backup

listen stats
    bind $stats_bind
    # HAProxy's own metrics (server UP/DOWN, check durations) next to the nodes' /metrics.
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /
    stats refresh 2s
    stats show-legends
"""
)

_RESOLVERS = """
# Node names are re-resolved at run time (pod and container addresses change).
resolvers sys
    parse-resolv-conf
    hold valid 10s
    timeout resolve 1s
"""


def render_haproxy(
    cluster: ClusterSettings,
    *,
    vip: str | None = None,
    app_port: int | None = None,
    mode: Mode = "follow-role",
    stats_port: int = 8404,
    tls_ca_file: str | None = None,
    hold_lua: str | None = None,
    runtime_api: str | None = None,
) -> str:
    """A complete haproxy.cfg for this pair; ``haproxy -c -f`` accepts it.

    ``vip`` (``host[:port]``, port 80 when absent) defaults to the cluster's
    vip_address, else 127.0.0.10:8080 (the demo). ``app_port`` is where the nodes
    serve clients; it defaults to the monitor port (whose ``/whoami`` says which node
    answered). Checks always go to the monitor port, which may differ.
    ``tls_ca_file``: the nodes serve HTTPS (SPEC section 6); HAProxy speaks TLS to them
    for traffic and checks and verifies their certificates against this CA bundle.
    ``hold_lua``: where :func:`hold_lua`'s source is installed on the load balancer; the config
    then holds requests while no node is UP (:func:`hold_ms`) instead of answering 503, so a
    planned switchover loses none.
    ``runtime_api``: ``HOST:PORT`` where HAProxy opens its runtime API (admin level, no password: bind it
    to the management network only) for the arbiters' ``HS_LB_RUNTIME_API``
    (:mod:`hotstandby.lbruntime`).
    """
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}")
    if not 1 <= stats_port <= 65535:
        raise ValueError("stats_port: must be 1..65535")
    if app_port is not None and not 1 <= app_port <= 65535:
        raise ValueError("app_port: must be 1..65535")
    vip_host, vip_port = split_host_port(vip or cluster.vip_address or DEFAULT_VIP, default_port=80)
    if stats_port == vip_port:
        raise ValueError(f"stats_port: must differ from the VIP port ({vip_port})")
    port = app_port or cluster.monitor_port
    told = bool(runtime_api) and mode == "follow-role"
    timing = check_timing(cluster, mode, told=told)
    turn_ms, retries = retry_timing(timing)
    names = [cluster.server1_address, cluster.server2_address]
    by_name = not all(_is_ip(h) for h in names)
    fast_opts = ""
    if timing.fastinter_ms is not None:
        fast_opts += f" fastinter {timing.fastinter_ms}ms"
    if timing.downinter_ms is not None:
        fast_opts += f" downinter {timing.downinter_ms}ms"
    socket = ""
    if runtime_api:
        socket = ("\n    # The arbiters tell HAProxy of a role change at once (HS_LB_RUNTIME_API); the checks stay the"
                  "\n    # safety net. Admin level and no password: keep this address on the management network."
                  f"\n    {lbruntime.socket_line(runtime_api)}")
    hold = ""
    if hold_lua:
        hold = ("\n    # No node UP (a switchover or failover in progress): hold the request for one, not a 503."
                f"\n    http-request lua.hotstandby_hold hotstandby {hold_ms(cluster, mode, told=told)} "
                "if { nbsrv(hotstandby) eq 0 }")
    return _TEMPLATE.substitute(
        mode=mode,
        lua_load=f"\n    lua-load {hold_lua}" if hold_lua else "",
        runtime_api=socket,
        hold=hold,
        connect_ms=turn_ms,
        retries=retries,
        interval_s=f"{cluster.heartbeat_interval_s:g}",
        timeout_s=f"{cluster.heartbeat_timeout_s:g}",
        failures=cluster.failures_to_switch,
        check_path=check_path(cluster, mode),
        worst_ms=timing.worst_follow_ms(),
        resolvers=_RESOLVERS if by_name else "",
        vip_bind=_addr(vip_host, vip_port),
        monitor_port=cluster.monitor_port,
        inter_ms=timing.inter_ms,
        fast_opts=fast_opts,
        rise=timing.rise,
        fall=timing.fall,
        timeout_ms=timing.timeout_ms,
        # vendor: when server1 is back, cut the sessions still on the backup (failback).
        marked_up=" on-marked-up shutdown-backup-sessions" if mode == "vendor" else "",
        resolve_opts=" resolvers sys resolve-prefer ipv4" if by_name else "",
        server1=_addr(cluster.server1_address, port),
        server2=_addr(cluster.server2_address, port),
        backup=" backup" if mode == "vendor" else "",
        stats_bind=_addr(vip_host, stats_port),
        # check-ssl: with `check port` set, HAProxy would otherwise check in clear text.
        tls_opts=f" ssl check-ssl verify required ca-file {tls_ca_file}" if tls_ca_file else "",
    )


def write_config(directory: Path, cluster: ClusterSettings, **kwargs: Any) -> Path:
    """Write haproxy.cfg (holding requests while no node is UP) and the Lua it loads into
    ``directory``, for the demo and the bench; returns the config's path."""
    lua = directory / "hold.lua"
    lua.write_text(hold_lua())
    cfg = directory / "haproxy.cfg"
    cfg.write_text(render_haproxy(cluster, hold_lua=str(lua), **kwargs))
    return cfg
