"""``hotstandby``: run a service, or talk to a running arbiter (SPEC section 9).

Server commands import the services lazily, so client commands start fast and the shared package
does not depend on the services at import time. Errors are one line on stderr and a non-zero exit:
2 for a refused setting or bad usage, 1 for everything else.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cli.logsetup import setup_logging
from hotstandby.settings import (
    ClusterSettings,
    SettingsError,
    cluster_from_env,
    validate_cluster,
)
from hotstandby.tls import client_context

app = typer.Typer(help="Active/standby controller for a pair of CTI servers.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
config_app = typer.Typer(help="Read or change the cluster settings.", no_args_is_help=True)
render_app = typer.Typer(help="Render configuration for other tools.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(render_app, name="render")
out = Console()
USER_AGENT = "hotstandby-cli/0.1"

UrlOpt = Annotated[str | None, typer.Option("--url", help="arbiter URL (default: the local arbiter)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"hotstandby: {message}", err=True)
    raise typer.Exit(code)


def default_url() -> str:
    if os.environ.get("HS_URL"):
        return os.environ["HS_URL"].rstrip("/")
    host = os.environ.get("HS_LOCAL_ADDRESS") or "127.0.0.1"
    port = os.environ.get("HS_ARBITER_PORT", "2011")
    scheme = "https" if os.environ.get("HS_TLS_CERT_FILE") else "http"
    return f"{scheme}://{host}:{port}"


def _tls_context() -> ssl.SSLContext:
    """Verify the arbiter's certificate against HS_TLS_CA_FILE (else the system store)."""
    try:
        return client_context(os.environ.get("HS_TLS_CA_FILE", ""))
    except (OSError, ssl.SSLError) as exc:
        fail(f"cannot load HS_TLS_CA_FILE: {exc}", 2)


def request(method: str, path: str, url: str | None, body: Any = None, timeout: float = 30.0) -> Any:
    base = (url or default_url()).rstrip("/")
    headers = {"user-agent": USER_AGENT}
    token = os.environ.get("HS_ADMIN_TOKEN", "")
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        r = httpx.request(method, base + path, json=body, headers=headers, timeout=timeout,
                          verify=_tls_context(), trust_env=False)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the arbiter at {base}: {type(exc).__name__}")
    if r.status_code >= 400:
        try:
            data = r.json()
            detail = data.get("message") or data.get("detail")
        except ValueError:
            detail = r.text.strip()
        if isinstance(detail, list):
            detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
        fail(f"{detail} (HTTP {r.status_code})", 2 if r.status_code == 422 else 1)
    ctype = r.headers.get("content-type", "")
    return r.json() if "json" in ctype else r.text


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


# -- services ---------------------------------------------------------------------------------
def _run_service(with_arbiter: bool, with_monitor: bool) -> None:
    # `hotstandby node` alone never gets here (cli.main runs it without typer); this is
    # the same service for `python -m cli.app node` and the like.
    from cli.serve import run

    raise typer.Exit(run(with_arbiter, with_monitor))


@app.command()
def node() -> None:
    """Run both services of one node (arbiter and monitor) in one process: the recommended way."""
    _run_service(True, True)


@app.command()
def arbiter() -> None:
    """Run only the arbiter (the monitor runs apart, sharing HS_DATA_DIR)."""
    _run_service(True, False)


@app.command()
def monitor() -> None:
    """Run only the monitor and CTI supervisor (following the role committed by the arbiter)."""
    _run_service(False, True)


@app.command("cti-sim")
def cti_sim(ports: Annotated[int, typer.Option(min=0)] = 2, devices: Annotated[int, typer.Option(min=0)] = 2,
            manager_url: Annotated[str | None, typer.Option(help="default $HS_CTI_MANAGER_URL")] = None) -> None:
    """The CTI server simulator: 0.2 s a registration, ready after; registers with the CTI manager."""
    from services.ctisim.sim import main as sim_main

    argv = ["--ports", str(ports), "--devices", str(devices)]
    if manager_url is not None:
        argv += ["--manager-url", manager_url]
    raise typer.Exit(sim_main(argv))


@app.command("cti-manager")
def cti_manager(bind: Annotated[str, typer.Option(help="HOST:PORT")] = "127.0.0.13:2748") -> None:
    """The CTI manager simulator: counts, from outside the pair, any time two nodes ran CTI at once."""
    from services.ctisim.manager import manager_main

    raise typer.Exit(manager_main(bind))


@app.command()
def demo(workdir: Annotated[str, typer.Option(help="where the nodes keep their data")] = "run/demo") -> None:
    """Start a whole pair, the CTI manager simulator and HAProxy on this machine (fast profile)."""
    from cli.demo import run_demo

    setup_logging("WARNING")
    raise typer.Exit(run_demo(workdir))


# -- clients ----------------------------------------------------------------------------------
@app.command()
def status(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show both servers as the console does."""
    data = request("GET", "/status", url)
    if as_json:
        _print_json(data)
        return
    table = Table(title="Hot Standby")
    for col in ("server", "address", "rank", "status", "role", "epoch", "since"):
        table.add_column(col)
    for n in sorted((data["local"], data["peer"]), key=lambda x: x["node_id"]):
        table.add_row(n["node_id"], str(n["address"]), n["rank"], n["status"], str(n["role"]), str(n["epoch"]),
                      str(n["role_since"]))
    out.print(table)
    loc = data["local"]
    out.print(f"expected failover delay: {data['expected_failover_delay_s']} s   "
              f"maintenance: {'on' if loc['maintenance'] else 'off'}   "
              f"failures: {loc['consecutive_failures']}   lan: {'ok' if loc['lan_ok'] else 'LOST'}   "
              f"cti: {loc['cti'].get('state')}")
    out.print(f"last decision ({loc['node_id']}): {loc['last_decision']}")


@app.command()
def switch(target: Annotated[str, typer.Argument(help="server1 or server2")],
           force: Annotated[bool, typer.Option("--force", help="take ACTIVE even if the current ACTIVE is "
                                                                "unreachable")] = False,
           url: UrlOpt = None) -> None:
    """Make TARGET the ACTIVE server (the console's "-> Active (Primary)")."""
    if target not in ("server1", "server2"):
        fail(f"target: must be server1 or server2, not {target!r}", 2)
    data = request("POST", "/switch", url, {"target": target, "force": force})
    typer.echo(f"{target} is ACTIVE (epoch {data['epoch']})")


@app.command()
def maintenance(mode: Annotated[str, typer.Argument(help="on or off")], url: UrlOpt = None) -> None:
    """Pause (on) or resume (off) automatic switching on both nodes."""
    if mode not in ("on", "off"):
        fail(f"mode: must be on or off, not {mode!r}", 2)
    data = request("POST", "/maintenance", url, {"enabled": mode == "on"})
    typer.echo(f"maintenance {mode}" + ("" if data.get("replicated") else " (peer not reached yet)"))


@app.command()
def logs(day: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default today)")] = None,
         days: Annotated[bool, typer.Option("--days", help="list the days that have a log")] = False,
         url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Print the fault-tolerant log."""
    if days:
        listed = request("GET", "/logs/days", url)
        _print_json(listed) if as_json else typer.echo("\n".join(listed))
        return
    query = "?" + "&".join(p for p in (f"day={day}" if day else "", "format=json" if as_json else "") if p)
    data = request("GET", "/logs" + (query if query != "?" else ""), url)
    _print_json(data) if as_json else typer.echo(data, nl=False)


@app.command()
def history(limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many changes")] = 20,
            local: Annotated[bool, typer.Option("--local", help="only the node at --url, not its peer's too")] = False,
            url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Every role change, newest first: when, which node, from and to, rule, cause, epoch and who asked. Both
    nodes' histories, merged (each node records its own changes), unless --local."""
    entries: list[dict[str, Any]] = list(request("GET", f"/history?limit={limit}", url))
    if not local:
        entries += _peer_history(url, limit)
    entries = sorted(entries, key=lambda e: (e["at"], e["node_id"]), reverse=True)[:limit]
    if as_json:
        _print_json(entries)
        return
    # Plain columns, one change a line, whatever the terminal's width: grep and awk read it.
    rows = [("at (UTC)", "node", "from", "to", "rule", "cause", "epoch", "asked by")]
    rows += [(e["at"].replace("T", " ").rstrip("Z"), e["node_id"], e["from"], e["to"], e["rule"] or "-", e["cause"],
              str(e["epoch"]), e["asked_by"] or "-") for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    if not entries:
        typer.echo("no role change recorded yet")


def _peer_history(url: str | None, limit: int) -> list[dict[str, Any]]:
    """The peer's own history, through its arbiter (the address the local one knows it by)."""
    status = request("GET", "/status", url)
    peer, scheme = status["peer"], (url or default_url()).split("://", 1)[0]
    host = str(peer["address"])
    peer_url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{status['settings']['arbiter_port']}"
    try:
        r = httpx.get(f"{peer_url}/history?limit={limit}", timeout=5.0, verify=_tls_context(), trust_env=False,
                      headers={"user-agent": USER_AGENT})
        r.raise_for_status()
        return list(r.json())
    except (httpx.HTTPError, ValueError) as exc:
        typer.echo(f"hotstandby: {peer['node_id']} at {peer_url} not reached ({type(exc).__name__}): its own role "
                   "changes are missing below", err=True)
        return []


NodeOpt = Annotated[str | None, typer.Option(metavar="NODE", help="server1 or server2")]


@app.command()
def explain(peer_dead: Annotated[bool, typer.Option("--peer-dead", help="if the peer died now")] = False,
            lan_lost: Annotated[bool, typer.Option("--lan-lost", help="if this node lost its LAN now")] = False,
            vip_to: Annotated[str | None, typer.Option("--vip-to", metavar="NODE",
                                                       help="if the VIP routed to NODE from now on")] = None,
            switch_to: Annotated[str | None, typer.Option("--switch", metavar="NODE",
                                                          help="if an operator switched to NODE now")] = None,
            stop: Annotated[bool, typer.Option("--stop", help="if this node got SIGTERM now")] = False,
            url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """What the core would decide on the next tick and why, from the node's live observation; with one of the
    options, what would happen then (like Pacemaker's crm_simulate). Changes nothing."""
    chosen = [(name, t) for name, on, t in (("peer-dead", peer_dead, None), ("lan-lost", lan_lost, None),
                                            ("vip-to", vip_to is not None, vip_to),
                                            ("switch", switch_to is not None, switch_to), ("stop", stop, None)) if on]
    if len(chosen) > 1:
        fail("explain: one of --peer-dead, --lan-lost, --vip-to, --switch, --stop at a time", 2)
    query = ""
    if chosen:
        name, target = chosen[0]
        if target is not None and target not in ("server1", "server2"):
            fail(f"--{name}: must be server1 or server2, not {target!r}", 2)
        query = f"?scenario={name}" + (f"&target={target}" if target else "")
    data = request("GET", "/explain" + query, url)
    if as_json:
        _print_json(data)
        return
    typer.echo(explain_text(data))


def explain_text(data: dict[str, Any]) -> str:
    lines = [f"{data['node_id']} is {data['role']} ({data['rank']}), epoch {data['epoch']}, cause {data['cause']}"
             f"{'; maintenance ON (no automatic switch)' if data['maintenance'] else ''}"]
    if data["observed_words"]:
        lines.append(f"last tick ({data['observed_at']}) observed: {data['observed_words']}")
    lines.append(f"next tick, seeing the same: {data['next_tick']['reason']}")
    sc = data.get("scenario")
    if sc:
        lines.append(f"if {sc['assumes']}:")
        for t in sc.get("ticks", []):
            lines.append(f"  tick {t['tick']} (+{t['after_s']:g} s): {t['reason']}")
        for s in sc.get("steps", []):
            lines.append(f"  {s}")
        lines.append(f"then: {sc['outcome']}")
    lines.append("(computed by the core's own rules from what the node observed; nothing was changed)")
    return "\n".join(lines)


@config_app.command("get")
def config_get(key: Annotated[str | None, typer.Argument()] = None, url: UrlOpt = None,
               as_json: JsonOpt = False) -> None:
    """Show the cluster settings (or one of them) with when and where each last changed."""
    data = request("GET", "/config", url)
    settings = data["settings"]
    if key is not None:
        if key not in settings:
            fail(f"{key}: unknown setting", 2)
        _print_json(settings[key]) if as_json else typer.echo(_fmt(settings[key]["value"]))
        return
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"cluster settings (digest {data['digest']})")
    for col in ("setting", "value", "updated_at", "origin"):
        table.add_column(col)
    for name, s in settings.items():
        table.add_row(name, _fmt(s["value"]), s["updated_at"], s["origin"])
    out.print(table)


def _fmt(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE words into a patch; values stay text and the settings model converts them."""
    patch: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"{pair!r}: expected KEY=VALUE", 2)
        field = ClusterSettings.model_fields.get(key.strip())
        if field is None:
            fail(f"{key}: unknown setting", 2)
        value = value.strip()
        if field.annotation is bool:
            low = value.lower()
            if low not in ("true", "false", "1", "0", "on", "off", "yes", "no"):
                fail(f"{key}: must be a boolean (true/false)", 2)
            patch[key.strip()] = low in ("true", "1", "on", "yes")
        else:
            patch[key.strip()] = value
    return patch


@config_app.command("set")
def config_set(assignments: Annotated[list[str], typer.Argument(help="KEY=VALUE ...")], url: UrlOpt = None,
               as_json: JsonOpt = False) -> None:
    """Change cluster settings; all or nothing, replicated to the peer at once."""
    patch = parse_assignments(assignments)
    data = request("PUT", "/config", url, patch)
    if as_json:
        _print_json(data)
        return
    changed = ", ".join(data["changed"]) or "nothing (same values)"
    typer.echo(f"changed: {changed}; replicated to the peer: {'yes' if data['replicated'] else 'not yet'}")


@app.command("expected-delay")
def expected_delay(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """The vendor's formula: N·I + T + CTI startup, from the running arbiter."""
    data = request("GET", "/status", url)
    cfg = data["settings"]
    if as_json:
        _print_json({"expected_failover_delay_s": data["expected_failover_delay_s"],
                     "failures_to_switch": cfg["failures_to_switch"],
                     "heartbeat_interval_s": cfg["heartbeat_interval_s"],
                     "heartbeat_timeout_s": cfg["heartbeat_timeout_s"]})
        return
    typer.echo(f"{data['expected_failover_delay_s']} s = N·I + T + CTI startup "
               f"(N={cfg['failures_to_switch']}, I={cfg['heartbeat_interval_s']} s, T={cfg['heartbeat_timeout_s']} s)")


@render_app.command("haproxy")
def render_haproxy_cmd(vip: Annotated[str | None, typer.Option(help="HOST:PORT of the frontend")] = None,
                       app_port: Annotated[int | None, typer.Option("--app-port")] = None,
                       mode: Annotated[str, typer.Option(help="follow-role or vendor")] = "follow-role",
                       hold_lua: Annotated[str | None, typer.Option(
                           "--hold-lua", help="PATH where `render hold-lua` is installed on the load balancer: "
                           "hold requests while no node is UP instead of answering 503")] = None,
                       runtime_api: Annotated[str | None, typer.Option(
                           "--runtime-api", help="HOST:PORT where HAProxy serves its runtime API (admin level; "
                           "the management network only): the arbiters' HS_LB_RUNTIME_API")] = None,
                       url: UrlOpt = None) -> None:
    """Print a complete haproxy.cfg with checks rendered from the cluster settings."""
    from hotstandby.haproxy import render_haproxy

    if mode not in ("follow-role", "vendor"):
        fail(f"mode: must be follow-role or vendor, not {mode!r}", 2)
    cluster = _cluster_for_render(url)
    try:
        text = render_haproxy(cluster, vip=vip, app_port=app_port, mode=mode,  # type: ignore[arg-type]
                              hold_lua=hold_lua, runtime_api=runtime_api)
    except ValueError as exc:
        fail(str(exc), 2)
    typer.echo(text, nl=False)


@render_app.command("hold-lua")
def render_hold_lua_cmd() -> None:
    """Print the Lua action that `render haproxy --hold-lua PATH` loads (install it at PATH)."""
    from hotstandby.haproxy import hold_lua

    typer.echo(hold_lua(), nl=False)


def _cluster_for_render(url: str | None) -> ClusterSettings:
    """The arbiter's settings when it answers, else the environment's (SPEC section 9)."""
    base = (url or default_url()).rstrip("/")
    try:
        r = httpx.get(base + "/config", timeout=2.0, trust_env=False, verify=_tls_context())
        if r.status_code == 200:
            values = {k: v["value"] for k, v in r.json()["settings"].items()}
            return validate_cluster(values)
    except (httpx.HTTPError, ValueError, KeyError, SettingsError):
        pass
    try:
        return cluster_from_env()
    except SettingsError as exc:
        fail(str(exc), 2)


@app.command()
def check(env_file: Annotated[str | None, typer.Option(
              "--env-file", help="the node's env file (default /etc/hotstandby/env when it exists and HS_NODE_ID "
                                 "is not set here)")] = None,
          as_json: JsonOpt = False) -> None:
    """Validate this node's settings without starting anything, then try the peer, the LAN probes, the VIP,
    the witness, the CTI command and the CTI manager: one line each; exit 0 only when all pass."""
    import asyncio

    from cli.check import ENV_FILE, load_env, run_checks

    path = Path(env_file) if env_file else (ENV_FILE if ENV_FILE.exists() and "HS_NODE_ID" not in os.environ
                                            else None)
    try:
        env, source = load_env(path, os.environ)
    except SettingsError as exc:
        fail(str(exc), 2)
    checks = asyncio.run(run_checks(env, source))
    passed = all(c.ok for c in checks)
    if as_json:
        _print_json({"ok": passed, "checks": [c.as_json() for c in checks]})
    else:
        for c in checks:
            typer.echo(c.line())
        failed = sum(not c.ok for c in checks)
        skipped = sum(c.status == "skip" for c in checks)
        aside = f" ({skipped} skipped: not configured)" if skipped else ""
        typer.echo(f"{len(checks)} checks{aside}: {'all pass' if passed else f'{failed} failed'}")
    if not passed:
        settings_bad = any(c.check == "settings" and not c.ok for c in checks)
        raise typer.Exit(2 if settings_bad else 1)


@app.command("install-unit")
def install_unit(
    root: Annotated[str, typer.Option(help="the root directory to install into (packaging, tests)")] = "/",
    prefix: Annotated[str, typer.Option(help="where the venv with hotstandby is (the unit runs PREFIX/bin/"
                                             "hotstandby)")] = "/opt/hotstandby",
    sets: Annotated[list[str] | None, typer.Option("--set", help="HS_NAME=VALUE to write into the env file "
                                                                 "(repeatable)")] = None,
) -> None:
    """The system user, the systemd unit (WatchdogSec from I), /etc/hotstandby/env and the secrets; then the
    next steps. `make install` creates the venv and runs this; run it again after changing I."""
    from cli.install import Installer, InstallError, next_steps

    changes: dict[str, str] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set {item!r}: expected HS_NAME=VALUE", 2)
        changes[key.strip()] = value.strip()
    if os.geteuid() != 0:
        fail("install-unit: must run as root (it creates a user and owns files to it)", 2)
    target = Path(root)
    try:
        done = Installer(target, prefix=prefix.rstrip("/") or "/", changes=changes).run()
    except InstallError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"install-unit: {exc.strerror}: {exc.filename}", 1)
    typer.echo(f"hotstandby installed into {target} (prefix {prefix}):")
    for what, text in done:
        typer.echo(f"  {what:<9} {text}")
    typer.echo(next_steps(target))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def sim(ctx: typer.Context) -> None:
    """Deterministic simulation of the pair: --seed S --steps K --runs R --json --profile P --witness --plant BUG
    --keep I,J --trace (exit 1 on any invariant violation; `hotstandby sim --help` lists every option)."""
    from hotstandby.sim.cli import main as sim_main

    argv = list(ctx.args)
    try:
        code = sim_main(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        code = int(exc.code or 0)
    raise typer.Exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
