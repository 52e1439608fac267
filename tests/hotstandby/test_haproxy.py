"""The rendered haproxy.cfg: accepted by the real haproxy, and the VIP follows the ACTIVE node."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import pytest

from hotstandby.haproxy import (
    CheckTiming,
    check_path,
    check_timing,
    hold_lua,
    hold_ms,
    render_haproxy,
    retry_timing,
    write_config,
)
from hotstandby.settings import ClusterSettings
from tests.needs import need


@pytest.fixture
def haproxy() -> str:
    """The haproxy binary (tests.needs: skipped, or failed under CI, when it is not installed)."""
    return need("haproxy", "haproxy")


needs_haproxy = pytest.mark.usefixtures("haproxy")

FAST = ClusterSettings(heartbeat_interval_s=1, heartbeat_timeout_s=1, failures_to_switch=3)
VENDOR_DEFAULT = ClusterSettings()
SUB_SECOND = ClusterSettings(heartbeat_interval_s=0.2, heartbeat_timeout_s=0.1, failures_to_switch=2)
APP_ERROR = ClusterSettings(switch_on_application_error=True)
NAMED = ClusterSettings(server1_address="node-a.example", server2_address="node-b.example", monitor_port=9080)


def haproxy_check(cfg: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    return subprocess.run([need("haproxy", "haproxy"), "-c", "-f", str(path)], capture_output=True, text=True,
                          timeout=30)


def lines_of(cfg: str) -> list[str]:
    return [line.strip() for line in cfg.splitlines()]


RENDER_CASES: dict[str, tuple[ClusterSettings, dict[str, Any]]] = {
    "fast": (FAST, {}),
    "fast-vendor": (FAST, {"mode": "vendor"}),
    "vendor-default": (VENDOR_DEFAULT, {"mode": "vendor"}),
    "default-follow": (VENDOR_DEFAULT, {}),
    "sub-second": (SUB_SECOND, {}),
    "app-error-vendor": (APP_ERROR, {"mode": "vendor"}),
    "custom-vip-app-port": (FAST, {"vip": "127.0.0.30:9443", "app_port": 7000, "stats_port": 9404}),
    "vip-without-port": (FAST.model_copy(update={"vip_address": "127.0.0.31"}), {}),
    "tls-to-nodes": (FAST, {"tls_ca_file": "/etc/ssl/certs/ca-certificates.crt"}),
    "ipv6": (ClusterSettings(server1_address="::1", server2_address="fd00::2"), {"vip": "[::1]:8088"}),
}


@needs_haproxy
@pytest.mark.parametrize("name", list(RENDER_CASES))
def test_haproxy_accepts_rendered_config(name: str, tmp_path: Path) -> None:
    """Every rendering passes `haproxy -c` without a single warning."""
    cluster, kwargs = RENDER_CASES[name]
    result = haproxy_check(render_haproxy(cluster, **kwargs), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


@needs_haproxy
def test_haproxy_accepts_config_with_host_names(tmp_path: Path) -> None:
    """Node names that do not resolve yet leave the server in maintenance instead of failing the start."""
    cfg = render_haproxy(NAMED, vip="0.0.0.0:8080")
    result = haproxy_check(cfg, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resolvers sys" in cfg
    assert "server server1 node-a.example:9080" in lines_of(cfg)


@pytest.mark.parametrize(
    ("cluster", "mode", "expected"),
    [
        (FAST, "follow-role", "/IPSCFG/admin/monitor.aspx?mod=FT"),
        (APP_ERROR, "follow-role", "/IPSCFG/admin/monitor.aspx?mod=FT"),
        (VENDOR_DEFAULT, "vendor", "/IPSCFG/admin/monitor.aspx?mod=NONE"),
        (APP_ERROR, "vendor", "/IPSCFG/admin/monitor.aspx?mod=IPSWS"),
    ],
)
def test_check_path(cluster: ClusterSettings, mode: Any, expected: str) -> None:
    """follow-role checks the role; vendor checks liveness (the application with IPSWS)."""
    cfg = render_haproxy(cluster, mode=mode)
    assert expected == check_path(cluster, mode)
    assert f"option httpchk GET {expected}" in lines_of(cfg)
    assert "http-check expect status 200" in lines_of(cfg)
    assert "on-marked-down shutdown-sessions" in cfg


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (FAST, CheckTiming(250, 250, 250, 250, rise=2, fall=1)),
        (VENDOR_DEFAULT, CheckTiming(2000, 2000, 2000, 2000, rise=2, fall=1)),
        (SUB_SECOND, CheckTiming(100, 100, 100, 100, rise=2, fall=1)),
        (
            ClusterSettings(heartbeat_interval_s=2, heartbeat_timeout_s=0.1),
            CheckTiming(500, 500, 500, 100, 2, 1),
        ),
    ],
)
def test_follow_role_timing(cluster: ClusterSettings, expected: CheckTiming) -> None:
    """inter = clamp(I/4, 100 ms, 2 s), timeout = min(T, inter), rise 2, fall 1."""
    assert expected == check_timing(cluster, "follow-role")


def test_follow_role_fast_profile_follows_within_two_seconds() -> None:
    """At the fast profile the VIP moves within 500 ms at worst, inside the 2 s of SPEC section 11."""
    expected_ms = 500
    assert expected_ms == check_timing(FAST).worst_follow_ms()
    cfg = render_haproxy(FAST)
    assert "timeout check 250ms" in lines_of(cfg)
    assert (
        "default-server check port 8080 inter 250ms fastinter 250ms downinter 250ms rise 2 fall 1 "
        "on-marked-down shutdown-sessions init-addr last,libc,none"
    ) in lines_of(cfg)


@pytest.mark.parametrize("inter_ms", [100, 250, 400, 1000, 2000, 5000, 30000])
def test_retries_turn_around_fast_and_outlast_what_three_did(inter_ms: int) -> None:
    """The retry turn-around (timeout connect) is a quarter of the check interval within 25..250 ms, and
    the retries together wait at least as long as three retries at clamp(inter, 100 ms, 1 s) did, so a
    request caught on a dead node is given up no sooner than before; every retry is dispatched afresh."""
    turn, retries = retry_timing(CheckTiming(inter_ms, inter_ms, inter_ms, 100, rise=2, fall=1))
    assert turn == min(max(inter_ms // 4, 25), 250)
    assert turn * retries >= 3 * min(max(inter_ms, 100), 1000) > turn * (retries - 1)
    sprint = ClusterSettings(heartbeat_interval_s=0.1, heartbeat_timeout_s=0.1, failures_to_switch=3)
    lines = lines_of(render_haproxy(sprint))
    assert {"option redispatch 1", "retries 12", "timeout connect 25ms"} <= set(lines)


def test_vendor_timing_is_the_vendor_guide() -> None:
    """vendor mode: fall = rise = N, inter = I, timeout = T, server2 a backup."""
    cluster = ClusterSettings(heartbeat_interval_s=30, heartbeat_timeout_s=10, failures_to_switch=5)
    assert CheckTiming(30000, None, None, 10000, rise=5, fall=5) == check_timing(cluster, "vendor")
    lines = lines_of(render_haproxy(cluster, mode="vendor"))
    assert "timeout check 10000ms" in lines
    assert (
        "default-server check port 8080 inter 30000ms rise 5 fall 5 on-marked-down shutdown-sessions "
        "on-marked-up shutdown-backup-sessions init-addr last,libc,none"
    ) in lines
    assert "server server1 127.0.0.11:8080" in lines
    assert "server server2 127.0.0.12:8080 backup" in lines


@pytest.mark.parametrize(
    ("cluster", "kwargs", "frontend", "stats", "servers"),
    [
        (FAST, {}, "bind 127.0.0.10:8080", "bind 127.0.0.10:8404", ("127.0.0.11:8080", "127.0.0.12:8080")),
        (
            FAST.model_copy(update={"vip_address": "127.0.0.31"}),
            {},
            "bind 127.0.0.31:80",
            "bind 127.0.0.31:8404",
            ("127.0.0.11:8080", "127.0.0.12:8080"),
        ),
        (
            FAST.model_copy(update={"vip_address": "127.0.0.31:81"}),
            {"vip": "127.0.0.30:9443", "app_port": 7000, "stats_port": 9404},
            "bind 127.0.0.30:9443",
            "bind 127.0.0.30:9404",
            ("127.0.0.11:7000", "127.0.0.12:7000"),
        ),
    ],
)
def test_vip_and_app_port(
    cluster: ClusterSettings, kwargs: dict[str, Any], frontend: str, stats: str, servers: tuple[str, str]
) -> None:
    """The vip argument beats the setting, which beats the demo VIP; checks stay on the monitor port."""
    lines = lines_of(render_haproxy(cluster, **kwargs))
    assert [frontend, stats] == [line for line in lines if line.startswith("bind ")]
    assert f"server server1 {servers[0]}" in lines
    assert f"server server2 {servers[1]}" in lines
    assert any(line.startswith("default-server check port 8080 ") for line in lines)
    assert "stats uri /" in lines


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "active-passive"}, "mode"),
        ({"stats_port": 8080}, "stats_port"),
        ({"app_port": 70000}, "app_port"),
        ({"vip": "not a host:80"}, "not a valid host"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    """A bad argument raises ValueError naming it, instead of a config haproxy would refuse."""
    with pytest.raises(ValueError, match=message):
        render_haproxy(FAST, **kwargs)


def test_tls_to_nodes() -> None:
    """With a CA file HAProxy speaks TLS to the nodes, checks included, and verifies them."""
    cfg = render_haproxy(FAST, tls_ca_file="/etc/hotstandby/tls/ca.crt")
    assert cfg.count(" ssl check-ssl verify required ca-file /etc/hotstandby/tls/ca.crt") == 1


def test_checked_in_example_is_current() -> None:
    """deploy/haproxy/haproxy.cfg is exactly what the fast profile renders."""
    example = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
    assert render_haproxy(FAST) == example.read_text()


# --- a real haproxy in front of two fake nodes --------------------------------------------------


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """HAProxy resets a check connection once it has the status line: not an error."""


class FakeNode:
    """A node's monitor reduced to what HAProxy sees: mod=FT by role, mod=NONE, /whoami."""

    def __init__(self, node_id: str, host: str, port: int, active: bool) -> None:
        self.node_id = node_id
        self.active = active
        self.delay = 0.0  # seconds /whoami takes (a request in flight during a switchover)
        self.asked = threading.Event()  # set when a /whoami arrives (a test waits for its request to be in flight)
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                mod = parse_qs(url.query).get("mod", [""])[0].upper()
                if url.path.lower() == "/ipscfg/admin/monitor.aspx" and mod == "FT":
                    self._answer(200 if node.active else 503, "ACTIVE" if node.active else "STANDBY")
                elif url.path.lower() == "/ipscfg/admin/monitor.aspx" and mod == "NONE":
                    self._answer(200, "OK")
                elif url.path == "/whoami":
                    node.asked.set()
                    time.sleep(node.delay)
                    self._answer(200, json.dumps({"node_id": node.node_id, "address": host}))
                else:
                    self._answer(404, "not found")

            def _answer(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: HAProxy checks 8x a second
                pass

        self.server = QuietServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.server.shutdown()
        self.server.server_close()


def free_port(*hosts: str) -> int:
    """A port free on every host at once (the pair shares one monitor port)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no common free port on {hosts}")


def whoami(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/whoami", timeout=1) as answer:
            return str(json.loads(answer.read())["node_id"])
    except (OSError, urllib.error.URLError, ValueError, http.client.HTTPException):  # a torn answer: retry
        return None


def wait_for(predicate: Any, deadline_s: float, step_s: float = 0.02) -> float:
    """Poll until predicate() is true; return the seconds it took, or fail at the deadline."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(step_s)
    raise AssertionError(f"not true within {deadline_s} s")


class Pair(NamedTuple):
    nodes: dict[str, FakeNode]
    vip_url: str
    stats_url: str
    runtime_api: str | None = None


@contextmanager
def running_pair(tmp_path: Path, *, hold: bool, cluster: ClusterSettings = FAST,
                 runtime_api: bool = False) -> Iterator[Pair]:
    """server1 ACTIVE and server2 STANDBY on 127.0.0.21/.22, haproxy on 127.0.0.20 (the fast profile unless
    ``cluster`` says otherwise; its runtime API on a port of 127.0.0.20 with ``runtime_api``)."""
    haproxy = need("haproxy", "haproxy")
    port = free_port("127.0.0.21", "127.0.0.22")
    vip_port = free_port("127.0.0.20")
    stats_port = free_port("127.0.0.20")
    while stats_port == vip_port:
        stats_port = free_port("127.0.0.20")
    api_port = free_port("127.0.0.20")
    while api_port in (vip_port, stats_port):
        api_port = free_port("127.0.0.20")
    cluster = cluster.model_copy(
        update={"server1_address": "127.0.0.21", "server2_address": "127.0.0.22", "monitor_port": port}
    )
    nodes = {
        "server1": FakeNode("server1", "127.0.0.21", port, active=True),
        "server2": FakeNode("server2", "127.0.0.22", port, active=False),
    }
    api = f"127.0.0.20:{api_port}" if runtime_api else None
    kwargs: dict[str, Any] = {"vip": f"127.0.0.20:{vip_port}", "stats_port": stats_port, "runtime_api": api}
    if hold:
        cfg = write_config(tmp_path, cluster, **kwargs)
    else:
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(render_haproxy(cluster, **kwargs))
    log = (tmp_path / "haproxy.log").open("w")
    proc = subprocess.Popen([haproxy, "-f", str(cfg), "-db"], stdout=log, stderr=subprocess.STDOUT)
    try:
        vip_url = f"http://127.0.0.20:{vip_port}"
        # HAProxy starts with both servers UP until their first check: wait for it to settle.
        wait_for(lambda: all(whoami(vip_url) == "server1" for _ in range(5)), deadline_s=10)
        yield Pair(nodes, vip_url, f"http://127.0.0.20:{stats_port}/", api)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for node in nodes.values():
            node.stop()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """The pair behind the config the demo and the bench use (requests held while no node is UP)."""
    with running_pair(tmp_path, hold=True) as p:
        yield p


def routes_to(url: str, node_id: str, times: int = 5) -> bool:
    return all(whoami(url) == node_id for _ in range(times))


@pytest.mark.integration
def test_vip_routes_to_the_active_node(pair: Pair) -> None:
    """With server1 ACTIVE every request through the VIP lands on server1, and the stats page serves."""
    expected = ["server1"] * 20
    assert expected == [whoami(pair.vip_url) for _ in range(20)]
    with urllib.request.urlopen(pair.stats_url, timeout=2) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(pair.stats_url + "metrics", timeout=2) as answer:
        assert b"haproxy_server_status" in answer.read()


@pytest.mark.integration
def test_vip_follows_a_role_flip_within_two_seconds(pair: Pair) -> None:
    """A switchover (old ACTIVE demoted first, then the target promoted) moves the VIP in under 2 s."""
    start = time.monotonic()
    pair.nodes["server1"].active = False  # R7: the old ACTIVE stops before the target starts
    pair.nodes["server2"].active = True
    wait_for(lambda: routes_to(pair.vip_url, "server2"), deadline_s=5)
    elapsed = time.monotonic() - start
    print(f"VIP followed the flip in {elapsed:.3f} s")
    assert elapsed < 2.0
    expected = ["server2"] * 20
    assert expected == [whoami(pair.vip_url) for _ in range(20)]


@pytest.mark.integration
def test_vip_follows_a_failover_within_two_seconds(pair: Pair) -> None:
    """The ACTIVE node dies and the STANDBY is promoted: the VIP moves in under 2 s."""
    start = time.monotonic()
    pair.nodes["server1"].stop()
    pair.nodes["server2"].active = True
    wait_for(lambda: routes_to(pair.vip_url, "server2"), deadline_s=5)
    elapsed = time.monotonic() - start
    print(f"VIP followed the failover in {elapsed:.3f} s")
    assert elapsed < 2.0



def status_through(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/whoami", timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def server_status(pair: Pair, server: str) -> str:
    """HAProxy's own view of a server (UP, DOWN, ...), from the stats page's CSV."""
    with urllib.request.urlopen(pair.stats_url + ";csv", timeout=2) as answer:
        rows = answer.read().decode().splitlines()
    header = rows[0].lstrip("# ").split(",")
    for row in rows[1:]:
        cells = dict(zip(header, row.split(","), strict=False))
        if cells.get("pxname") == "hotstandby" and cells.get("svname") == server:
            return cells["status"].split()[0]
    raise AssertionError(f"{server} not on the stats page")


def no_node_up_for_a_while(pair: Pair) -> tuple[int, float]:
    """Both nodes STANDBY (the gap of a switchover, stretched to 1 s): a request sent in the gap,
    and server2 promoted 1 s later. Returns the request's status and how long it took."""
    pair.nodes["server1"].active = False
    wait_for(lambda: server_status(pair, "server1") == "DOWN", 5)
    promote = threading.Timer(1.0, lambda: setattr(pair.nodes["server2"], "active", True))
    start = time.monotonic()
    promote.start()
    try:
        status = status_through(pair.vip_url)
    finally:
        promote.cancel()
    return status, time.monotonic() - start


@pytest.mark.integration
def test_a_request_with_no_node_up_is_held_until_one_is(pair: Pair) -> None:
    """With the hold, the request waits for the promoted node instead of getting HAProxy's 503."""
    status, took = no_node_up_for_a_while(pair)
    assert status == 200
    assert 0.9 <= took < hold_ms(FAST) / 1000
    assert routes_to(pair.vip_url, "server2")


@pytest.mark.integration
def test_without_the_hold_a_request_with_no_node_up_gets_503(tmp_path: Path) -> None:
    """The same gap without the hold: HAProxy answers 503 at once (what the hold is for)."""
    with running_pair(tmp_path, hold=False) as pair:
        status, took = no_node_up_for_a_while(pair)
    assert status == 503
    assert took < 0.9


def test_hold_lasts_a_whole_failover_within_bounds() -> None:
    """The hold covers the R1 bound plus the load balancer's follow, at least 1 s, at most 10 s."""
    assert hold_ms(FAST) == 4 * 1000 + 1000 + check_timing(FAST).worst_follow_ms()
    assert hold_ms(VENDOR_DEFAULT) == 10_000
    assert hold_ms(ClusterSettings(heartbeat_interval_s=0.05, heartbeat_timeout_s=0.05, failures_to_switch=1)) == 1000


@needs_haproxy
@pytest.mark.parametrize("mode", ["follow-role", "vendor"])
def test_haproxy_accepts_config_with_the_hold(mode: str, tmp_path: Path) -> None:
    """The hold's Lua loads and its action parses, in both modes."""
    lua = tmp_path / "hold.lua"
    lua.write_text(hold_lua())
    cfg = render_haproxy(FAST, mode=mode, hold_lua=str(lua))  # type: ignore[arg-type]
    assert f"lua-load {lua}" in lines_of(cfg)
    assert f"http-request lua.hotstandby_hold hotstandby {hold_ms(FAST, mode)} if {{ nbsrv(hotstandby) eq 0 }}" \
        in lines_of(cfg)  # type: ignore[arg-type]
    result = haproxy_check(cfg, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


@needs_haproxy
def test_cli_renders_the_hold_and_its_lua(tmp_path: Path) -> None:
    """`render hold-lua` prints the Lua; `render haproxy --hold-lua PATH` loads it; haproxy accepts both."""
    env = {"PATH": "/usr/bin:/bin", "HS_HEARTBEAT_INTERVAL_S": "0.2", "HS_HEARTBEAT_TIMEOUT_S": "0.2",
           "HS_FAILURES_TO_SWITCH": "3"}
    cli = [sys.executable, "-m", "cli", "render"]
    root = Path(__file__).resolve().parents[2]
    lua = subprocess.run([*cli, "hold-lua"], capture_output=True, text=True, env=env, cwd=root, timeout=60)
    assert lua.returncode == 0, lua.stderr
    assert lua.stdout == hold_lua()
    (tmp_path / "hold.lua").write_text(lua.stdout)
    # --url where nothing listens: the settings come from the environment (SPEC section 9).
    cfg = subprocess.run([*cli, "haproxy", "--hold-lua", str(tmp_path / "hold.lua"), "--url", "http://127.0.0.1:9"],
                         capture_output=True, text=True, env=env, cwd=root, timeout=60)
    assert cfg.returncode == 0, cfg.stderr
    aggressive = ClusterSettings(heartbeat_interval_s=0.2, heartbeat_timeout_s=0.2, failures_to_switch=3)
    assert cfg.stdout == render_haproxy(aggressive, hold_lua=str(tmp_path / "hold.lua"))
    result = haproxy_check(cfg.stdout, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_haproxy
def test_the_runtime_api_socket_is_rendered_and_accepted(tmp_path: Path) -> None:
    """--runtime-api HOST:PORT adds an admin-level stats socket on TCP that haproxy -c accepts."""
    cfg = render_haproxy(FAST, runtime_api="127.0.0.20:9999")
    assert "stats socket ipv4@127.0.0.20:9999 level admin" in lines_of(cfg)
    result = haproxy_check(cfg, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr
    assert "stats socket" not in render_haproxy(FAST)


def test_cli_renders_the_runtime_api_and_refuses_a_bad_one() -> None:
    """`render haproxy --runtime-api` prints the socket line; a bad address exits 2 naming runtime_api."""
    env = {"PATH": "/usr/bin:/bin", "HS_URL": "http://127.0.0.1:9"}
    cli = [sys.executable, "-m", "cli", "render", "haproxy", "--runtime-api"]
    root = Path(__file__).resolve().parents[2]
    ok = subprocess.run([*cli, "127.0.0.20:9999"], capture_output=True, text=True, env=env, cwd=root, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "stats socket ipv4@127.0.0.20:9999 level admin" in lines_of(ok.stdout)
    bad = subprocess.run([*cli, "127.0.0.20"], capture_output=True, text=True, env=env, cwd=root, timeout=60)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "runtime_api" in bad.stderr and "needs a port" in bad.stderr


def test_told_by_the_arbiters_a_node_falls_after_two_failed_checks() -> None:
    """With --runtime-api the checks use fall 2 (a check in flight at a promotion must not throw the new
    ACTIVE out); rise and the pace stay; without it, or in vendor mode, nothing changes."""
    told = check_timing(FAST, told=True)
    assert (told.fall, told.rise, told.inter_ms) == (2, 2, check_timing(FAST).inter_ms)
    assert "rise 2 fall 2 " in render_haproxy(FAST, runtime_api="127.0.0.20:9999")
    assert "rise 2 fall 1 " in render_haproxy(FAST)
    assert check_timing(FAST, "vendor") == check_timing(FAST, "vendor", told=True)
