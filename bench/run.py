"""``make bench``: our failover against keepalived's in the fault lab, one run, one JSON, one chart.

    python -m bench            # make bench: 20 kills a profile, 2-minute loss windows
    python -m bench --long     # make bench-long: 10-minute loss windows, the vendor default measured once
    python -m bench --quick    # a few runs, short windows: development and the smoke test

Phases (each part runs in its own lab of network namespaces, so parts can run side by side):

1. in the background all along, a pair at the vendor default profile (I=30, T=10, N=5): bytes on
   the peer link, and under ``--long`` one kill -9 timed (about 2-3 minutes of detection);
2. kill -9 of the ACTIVE node, ``--runs`` times a profile, one profile after the other (timings are
   never taken while another foreground part runs), each kill at a random phase (``--seed``), seen
   through two HAProxies side by side: one the health checks alone move, one the arbiters tell
   (``HS_LB_RUNTIME_API``); then planned switchovers through both; then the same kills with warm CTI
   (``HS_CTI_MODE=warm``); keepalived's kill -9 runs at advert_int 1, 0.2 and 0.1 come in between,
   with a client through its VIP as through ours;
3. the loss windows: our three profiles and keepalived's three advert_ints, six labs side by side,
   each through 10, 20 and 30 % random loss on its peer link.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import keepalived as ka
from bench.pair import PROFILES, VENDOR, BenchPair, Profile, heartbeat_bytes
from bench.procs import load_average, pss_mb, rss_mb
from bench.report import client_visible, goals, summary, tables
from bench.resources import keepalived_idle, resource_table
from hotstandby import rules
from lab import netns

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LOSSES = (0.10, 0.20, 0.30)
ADVERTS = (1.0, 0.2, 0.1)
# What the kills see besides the health checks alone: the arbiters telling HAProxy (HS_LB_RUNTIME_API), and
# warm CTI (HS_CTI_MODE=warm). A product without them (main before issue 15) is measured with --variants checks.
VARIANTS = ("told", "warm")
IDLE_PROFILES = ("fast", "sprint")  # idle CPU at I = 1 s and I = 0.1 s; memory from the fast pair
IDLE_ADVERTS = (1.0, 0.1)  # keepalived's idle CPU at the matched advert_int
ONLY = ("idle", "memory", "bytes")  # python -m bench --only: the resource rows alone


@dataclass(frozen=True)
class Plan:
    mode: str
    runs: int
    loss_window_s: float
    idle_s: float
    idle_sprint_s: float
    idle_repeats: int
    bytes_window_s: float
    ka_bytes_window_s: float
    switches: int
    vendor_measured: bool
    parallel_deaths: bool
    warm_profiles: int  # how many of our profiles are killed again with warm CTI (the first ones)

    @classmethod
    def of(cls, mode: str) -> Plan:
        if mode == "quick":
            return cls("quick", 2, 3, 3, 2, 1, 10, 3, 1, False, True, 1)
        if mode == "long":
            return cls("long", 20, 600, 20, 20, 5, 1800, 60, 3, True, False, 3)
        return cls("bench", 20, 120, 20, 20, 3, 300, 30, 3, False, False, 3)


class Bench:
    def __init__(self, plan: Plan, out: Path, log: Callable[[str], None], seed: int = 0) -> None:
        self.plan, self.out, self.log = plan, out, log
        self.seed = seed
        self.res: dict[str, Any] = {"profiles": {}, "keepalived": {}, "resources": {}, "errors": [], "seed": seed}
        self.raw: dict[str, Any] = {"deaths": {}, "warm_deaths": {}, "keepalived_deaths": {}}
        self.lock = threading.Lock()
        # Pairs that run side by side start one at a time (quick: all at once, to be quick).
        self.boot: Any = contextlib.nullcontext() if plan.parallel_deaths else threading.Lock()
        self.keep_logs = False
        self.profiles: list[str] = list(PROFILES)
        self.variants: list[str] = list(VARIANTS)
        self.only: list[str] = []  # --only: the resource rows alone (run_only)

    # -- running a part in its own lab -------------------------------------------------------
    def part(self, name: str, fn: Callable[[netns.Lab], None]) -> None:
        t0 = time.monotonic()
        try:
            with netns.lab_run() as lab:
                try:
                    fn(lab)
                except Exception:
                    self.keep(name, lab)
                    raise
                if self.keep_logs:
                    self.keep(name, lab)
        except Exception as exc:  # one failed part must not lose the others' figures
            with self.lock:
                self.res["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            self.log(f"[{name}] FAILED: {exc}\n{traceback.format_exc()}")
            return
        self.log(f"[{name}] done in {time.monotonic() - t0:.0f} s")

    def keep(self, name: str, lab: netns.Lab) -> None:
        """The part's logs (node output, fault-tolerant logs, keepalived, HAProxy) into run/bench-logs/."""
        dest = ROOT / "run" / "bench-logs" / name.replace(" ", "-")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(lab.base, dest, ignore=shutil.ignore_patterns("*.db*", "*.pid"), dirs_exist_ok=True)
        self.log(f"[{name}] logs kept in {dest}")

    # -- ours --------------------------------------------------------------------------------
    def rng(self, part: str) -> random.Random:
        """The random phases of one part: the same ``--seed`` draws the same waits, part by part."""
        return random.Random(f"{self.seed}/{part}")

    def deaths(self, profile: Profile) -> Callable[[netns.Lab], None]:
        def run(lab: netns.Lab) -> None:
            bp = BenchPair(lab, lab.base / profile.name, profile, rng=self.rng(f"deaths {profile.name}"),
                           runtime_api="told" in self.variants)
            try:
                with self.boot:
                    bp.start()
                p = self.res["profiles"].setdefault(profile.name, {})
                p["label"] = profile.label()
                p["haproxy_check_ms"] = bp.haproxy_timing()
                if profile.name in IDLE_PROFILES:
                    window = self.plan.idle_s if profile.name == "fast" else self.plan.idle_sprint_s
                    self.record_idle(profile.name, bp.resources(window, self.plan.idle_repeats))
                if "told" in self.variants:
                    bp.start_lb("api")  # after the idle figures: they see one load balancer's checks
                self.kills(bp, profile.name, self.raw["deaths"].setdefault(profile.name, []))
                sw = bp.switchover(rate=50, switches=self.plan.switches)
                p["switchover"] = sw
                for lb in bp.lbs:
                    self.log(f"[{profile.name}] switchover through {lb}: {sw[lb]['failed_requests']} failed of "
                             f"{sw[lb]['requests']}, longest gap {_f(sw[lb]['max_gap_s'])} s")
            finally:
                bp.close()
        return run

    def warm_deaths(self, profile: Profile) -> Callable[[netns.Lab], None]:
        """The same kills with warm CTI (HS_CTI_MODE=warm): the survivor's idle CTI process registers."""
        def run(lab: netns.Lab) -> None:
            bp = BenchPair(lab, lab.base / f"warm-{profile.name}", profile, extra={"HS_CTI_MODE": "warm"},
                           rng=self.rng(f"warm deaths {profile.name}"), runtime_api="told" in self.variants)
            try:
                with self.boot:
                    bp.start()
                if "told" in self.variants:
                    bp.start_lb("api")
                self.kills(bp, f"warm {profile.name}", self.raw["warm_deaths"].setdefault(profile.name, []))
            finally:
                bp.close()
        return run

    def kills(self, bp: BenchPair, name: str, runs: list[dict[str, Any]]) -> None:
        """``--runs`` kills, each appended to ``runs`` as it is done: a part that fails half-way keeps the
        runs it made (the summaries say how many)."""
        for i in range(self.plan.runs):
            d = bp.death_run()
            runs.append(d.as_dict())
            self.log(f"[{name}] kill -9 {d.victim} #{i + 1} (phase {d.phase_s:.3f} s): ACTIVE {_f(d.rel(d.active))} s, "
                     f"CTI {_f(d.rel(d.cti))}, VIP {_f(d.rel(d.vip))}, VIP told {_f(d.rel(d.vip_api))}")
            bp.restart(d.victim)

    def losses(self, profile: Profile) -> Callable[[netns.Lab], None]:
        def run(lab: netns.Lab) -> None:
            bp = BenchPair(lab, lab.base / f"loss-{profile.name}", profile, runtime_api=False)
            try:
                with self.boot:
                    bp.start(haproxy=False)
                fs, changes, unsettled = {}, 0, []
                for loss in LOSSES:
                    r = bp.false_switches(loss, self.plan.loss_window_s)
                    fs[f"{round(loss * 100)}"] = r["takeovers"]
                    changes += r["role_changes"]
                    if not r["settled_before"]:
                        unsettled.append(f"{round(loss * 100)}")
                    self.log(f"[loss {profile.name}] {loss:.0%}: {r['takeovers']} takeovers, "
                             f"{r['role_changes']} role changes")
                with self.lock:
                    p = self.res["profiles"].setdefault(profile.name, {})
                    p["false_switches"] = fs
                    p["role_changes_under_loss"] = changes
                    p["loss_windows_started_unsettled"] = unsettled
            finally:
                bp.close()
        return run

    def background(self, lab: netns.Lab) -> None:
        """The vendor default profile: bytes on the peer link; under --long one kill -9 timed too."""
        bp = BenchPair(lab, lab.base / "vendor", VENDOR, rng=self.rng("vendor"), runtime_api=False)
        try:
            bp.start(haproxy=False)
            hb = heartbeat_bytes(bp, self.plan.bytes_window_s)
            with self.lock:
                self.res["resources"]["heartbeat_bytes_per_hour"] = hb["bytes_per_hour"]
                self.res["resources"]["heartbeat_detail"] = hb
            self.log(f"[vendor] peer link: {hb['bytes']} bytes in {hb['window_s']} s -> "
                     f"{hb['bytes_per_hour']} bytes/hour")
            if self.plan.vendor_measured:
                d = bp.death_run(deadline=120)
                with self.lock:
                    self.res.setdefault("vendor_default", {})["measured_death_to_active_s"] = d.rel(d.active)
                    self.res["vendor_default"]["measured_run"] = d.as_dict()
                self.log(f"[vendor] kill -9: ACTIVE after {_f(d.rel(d.active))} s")
        finally:
            bp.close()

    # -- resources (bench/resources.py) --------------------------------------------------------
    def record_idle(self, profile: str, r: dict[str, Any]) -> None:
        """An idle measure of our pair, under the keys the report reads."""
        with self.lock:
            if profile == "fast":
                self.res["resources"].update(
                    rss_mb=max(r[n]["host_rss_mb"] for n in ("server1", "server2")),
                    pss_mb=max(r[n]["host_pss_mb"] for n in ("server1", "server2")),
                    idle_cpu_pct=r["host_pct"], idle_cpu_pct_node_process=r["node_pct"],
                    rss_mb_node_process=r["rss_mb"], pss_mb_node_process=r["pss_mb"], idle_detail=r)
            else:
                self.res["resources"].update(idle_cpu_pct_sprint=r["host_pct"],
                                             idle_cpu_pct_sprint_node_process=r["node_pct"], idle_detail_sprint=r)

    def idle(self, profile: Profile) -> Callable[[netns.Lab], None]:
        """--only idle/memory: a pair steady behind HAProxy, its idle CPU (and memory) and nothing else. The
        default configuration: one HAProxy checking the nodes, no runtime API (a node told of a load balancer
        that is not there would try it again every second)."""
        def run(lab: netns.Lab) -> None:
            bp = BenchPair(lab, lab.base / f"idle-{profile.name}", profile, runtime_api=False)
            try:
                bp.start()
                window = self.plan.idle_s if profile.name == "fast" else self.plan.idle_sprint_s
                r = bp.resources(window, self.plan.idle_repeats)
                self.record_idle(profile.name, r)
                self.log(f"[idle {profile.name}] node process {r['node_pct']:.2f} % of a core, with CTI "
                         f"{r['host_pct']:.2f} %, {r['rss_mb']} MB resident (loads {r['load']})")
            finally:
                bp.close()
        return run

    def ka_idle(self, advert: float) -> Callable[[netns.Lab], None]:
        """keepalived's idle CPU and memory at ``advert``, and at advert_int 1 its bytes on the peer link."""
        def run(lab: netns.Lab) -> None:
            pair = ka.KeepalivedPair(lab, lab.base / "ka-idle", advert)
            try:
                pair.start("server1")
                pair.start("server2")
                ka.wait_state(pair, "server1", "MASTER", 15)
                ka.wait_state(pair, "server2", "BACKUP", 15)
                time.sleep(1.0)
                self.record_ka_idle(lab, pair)
                if advert == 1.0 and "bytes" in self.only:
                    from bench.pair import PeerLinkCounter

                    counter = PeerLinkCounter(lab)
                    b0, _ = counter.read()
                    t0 = time.monotonic()
                    time.sleep(self.plan.ka_bytes_window_s)
                    b1, _ = counter.read()
                    with self.lock:
                        self.res["keepalived"]["bytes_per_hour_advert_1"] = round(
                            (b1 - b0) * 3600 / (time.monotonic() - t0))
            finally:
                pair.stop()
        return run

    def record_ka_idle(self, lab: netns.Lab, pair: ka.KeepalivedPair) -> dict[str, Any]:
        """keepalived's idle CPU at the pair's advert_int, measured like ours, under the keys the report reads."""
        advert = pair.advert
        window = self.plan.idle_s if advert == 1.0 else self.plan.idle_sprint_s
        r = keepalived_idle(lab, pair.keepalived_pids, window, self.plan.idle_repeats)
        with self.lock:
            k = self.res["keepalived"]
            k[f"idle_cpu_pct_advert_{advert:g}"] = r["cpu_pct"]
            k[f"idle_detail_advert_{advert:g}"] = r
            k.setdefault("rss_mb", r["rss_mb"])
            k.setdefault("pss_mb", r["pss_mb"])
        self.log(f"[keepalived idle {advert:g}] {r['cpu_pct']:.3f} % of a core (loads {r['load']})")
        return r

    def run_only(self) -> dict[str, Any]:
        """--only: the resource rows alone; the vendor default's bytes in the background meanwhile."""
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=1) as bg:
            back = bg.submit(self.part, "vendor", self.background) if "bytes" in self.only else None
            parts: list[tuple[str, Callable[[netns.Lab], None]]] = []
            if "idle" in self.only or "memory" in self.only:
                parts.append(("idle fast", self.idle(PROFILES["fast"])))
            if "idle" in self.only:
                parts.append(("idle sprint", self.idle(PROFILES["sprint"])))
                parts += [(f"keepalived idle {a:g}", self.ka_idle(a)) for a in IDLE_ADVERTS]
            elif "bytes" in self.only:
                parts.append(("keepalived idle 1", self.ka_idle(1.0)))
            for name, fn in parts:
                self.part(name, fn)
            if back is not None:
                back.result()
        self.res["machine"]["load_at_end"] = [round(x, 2) for x in load_average()]
        self.res["duration_s"] = round(time.monotonic() - started)
        return self.res

    # -- keepalived --------------------------------------------------------------------------
    def ka_deaths(self, advert: float) -> Callable[[netns.Lab], None]:
        def run(lab: netns.Lab) -> None:
            pair = ka.KeepalivedPair(lab, lab.base / "ka", advert, rng=self.rng(f"keepalived deaths {advert:g}"))
            try:
                refused = pair.check_config("server1")
                if refused:
                    raise RuntimeError(f"keepalived refuses advert_int {advert:g}: {refused}")
                pair.start("server1")
                pair.start("server2")
                ka.wait_state(pair, "server1", "MASTER", 15)
                ka.wait_state(pair, "server2", "BACKUP", 15)
                # server2 reads as BACKUP before its keepalived has heard a single advert (no event yet): let
                # it hear several, or the first kill finds it in its start-up wait, not in steady state.
                time.sleep(max(2.0, 5 * advert))
                key = f"{advert:g}"
                if advert in IDLE_ADVERTS:
                    self.record_ka_idle(lab, pair)
                if advert == 1.0:
                    from bench.pair import PeerLinkCounter

                    counter = PeerLinkCounter(lab)
                    b0, _ = counter.read()
                    t0 = time.monotonic()
                    time.sleep(self.plan.ka_bytes_window_s)
                    b1, _ = counter.read()
                    pids = pair.keepalived_pids("server2")
                    with self.lock:
                        self.res["keepalived"]["rss_mb"] = round(rss_mb(pids), 1)
                        self.res["keepalived"]["pss_mb"] = round(pss_mb(pids), 1)
                        self.res["keepalived"]["bytes_per_hour_advert_1"] = round(
                            (b1 - b0) * 3600 / (time.monotonic() - t0))
                pair.start_apps()
                runs = self.raw["keepalived_deaths"].setdefault(key, [])  # kept as they come (see kills())
                for i in range(self.plan.runs):
                    r = ka.death_run(pair)
                    runs.append(r)
                    self.log(f"[keepalived {key}] kill -9 MASTER #{i + 1} (phase {r['phase_s']:.3f} s): "
                             f"MASTER {_f(r['master_s'])} s, VIP answered {_f(r['vip_s'])} s")
            finally:
                pair.stop()
        return run

    def ka_losses(self, advert: float) -> Callable[[netns.Lab], None]:
        def run(lab: netns.Lab) -> None:
            pair = ka.KeepalivedPair(lab, lab.base / "ka-loss", advert)
            try:
                pair.start("server1")
                pair.start("server2")
                fs = {}
                for loss in LOSSES:
                    r = ka.false_switches(pair, loss, self.plan.loss_window_s)
                    fs[f"{round(loss * 100)}"] = r["takeovers"]
                    self.log(f"[loss keepalived {advert:g}] {loss:.0%}: {r['takeovers']} takeovers")
                with self.lock:
                    self.res["keepalived"].setdefault(f"{advert:g}", {})["false_switches"] = fs
            finally:
                pair.stop()
        return run

    # -- the whole run -----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        plan = self.plan
        with ThreadPoolExecutor(max_workers=1) as bg:
            back = bg.submit(self.part, "vendor", self.background)
            # Phase 2: kill -9 runs, one part at a time (quick: two side by side, ours beside keepalived's;
            # six at once starved a sprint pair on a 2-core machine already busy with the test suite).
            ours = [(f"deaths {p}", self.deaths(PROFILES[p])) for p in self.profiles]
            theirs = [(f"keepalived deaths {a:g}", self.ka_deaths(a)) for a in ADVERTS]
            warm = [(f"warm deaths {p}", self.warm_deaths(PROFILES[p]))
                    for p in (self.profiles[:plan.warm_profiles] if "warm" in self.variants else [])]
            parts = [part for trio in itertools.zip_longest(ours, theirs, warm) for part in trio if part is not None]
            if plan.parallel_deaths:
                with ThreadPoolExecutor(max_workers=2) as pool:
                    list(pool.map(lambda nf: self.part(*nf), parts))
            else:
                for name, fn in parts:
                    self.part(name, fn)
            # Phase 3: the loss windows, six labs side by side.
            self.log(f"loss windows: {len(PROFILES) + len(ADVERTS)} labs side by side, "
                     f"{plan.loss_window_s:g} s at each of 10/20/30 %")
            loss_parts = [(f"loss {p}", self.losses(PROFILES[p])) for p in self.profiles]
            loss_parts += [(f"loss keepalived {a:g}", self.ka_losses(a)) for a in ADVERTS]
            with ThreadPoolExecutor(max_workers=len(loss_parts)) as pool:
                list(pool.map(lambda nf: self.part(*nf), loss_parts))
            back.result()
        self.finish(time.monotonic() - started)
        return self.res

    def finish(self, took: float) -> None:
        res, plan = self.res, self.plan
        for name, runs in self.raw["deaths"].items():
            p = res["profiles"].setdefault(name, {})

            def col(key: str, runs: list[dict[str, Any]] = runs) -> list[float | None]:
                return [r[key] for r in runs]

            p["death_to_active_s"] = summary(col("active_s"))
            p["death_to_cti_s"] = summary(col("cti_s"))
            p["death_to_vip_s"] = summary(col("vip_s"))
            p["death_to_vip_api_s"] = summary(col("vip_api_s"))
            p["death_to_first_failure_s"] = summary(col("first_failure_s"))
            p["promotion_to_cti_s"] = summary([_minus(r["cti_s"], r["active_s"]) for r in runs])
            p["promotion_to_vip_s"] = summary([_minus(r["vip_s"], r["active_s"]) for r in runs])
            p["promotion_to_vip_api_s"] = summary([_minus(r["vip_api_s"], r["active_s"]) for r in runs])
            p["promotion_to_cti_spawned_s"] = summary([_minus(r["cti_spawned_s"], r["active_s"]) for r in runs])
            p["cti_spawned_to_registered_s"] = summary([_minus(r["cti_s"], r["cti_spawned_s"]) for r in runs])
            p["kill_phase_s"] = summary(col("phase_s"))
            p["runs"] = runs
        for key, runs in self.raw["keepalived_deaths"].items():
            k = res["keepalived"].setdefault(key, {})
            k["death_to_master_s"] = summary([r["master_s"] for r in runs])
            k["death_to_vip_seen_s"] = summary([r["vip_seen_s"] for r in runs])
            k["death_to_vip_s"] = summary([r["vip_s"] for r in runs])
            k["runs"] = runs
        for name, runs in self.raw["warm_deaths"].items():
            res["profiles"].setdefault(name, {})["warm"] = {
                "death_to_active_s": summary([r["active_s"] for r in runs]),
                "death_to_cti_s": summary([r["cti_s"] for r in runs]),
                "promotion_to_cti_s": summary([_minus(r["cti_s"], r["active_s"]) for r in runs]),
                "death_to_vip_api_s": summary([r["vip_api_s"] for r in runs]),
                "runs": runs}
        sw = res["profiles"].get("aggressive", {}).get("switchover")
        if sw:
            res["switchover"] = {"profile": PROFILES["aggressive"].label(), **{
                lb: {k: sw[lb][k] for k in ("failed_requests", "max_gap_s", "switches", "rate_per_s", "requests",
                                            "median_vip_s")} for lb in ("checks", "api") if lb in sw}}
        res["vendor_default"] = {**vendor_computed(res), **res.get("vendor_default", {})}
        deaths: dict[str, list[dict[str, Any]]] = self.raw["deaths"]
        aggressive = deaths.get("aggressive") or next(iter(deaths.values()), [])
        if aggressive:
            ranked = sorted((r for r in aggressive if r["active_s"] is not None), key=lambda r: r["active_s"])
            if ranked:
                res["timeline"] = {"profile": "aggressive" if self.raw["deaths"].get("aggressive") else "",
                                   **ranked[len(ranked) // 2]}
        for _adv, k in res["keepalived"].items():
            if isinstance(k, dict):
                k.setdefault("false_switches", {})
        res["client_visible"] = client_visible(res)
        res["machine"]["load_at_end"] = [round(x, 2) for x in load_average()]
        res["duration_s"] = round(took)
        res["loss_window_s"] = plan.loss_window_s
        res["goals"] = goals(res)


def vendor_computed(res: dict[str, Any]) -> dict[str, Any]:
    """The vendor default's failover, computed by the model the measured profiles check.

    The same arithmetic for every profile: the product's own detection formula (N·I+T, R1's
    N·I+T+I, the expected failover delay), and a kill -9 model — the dead node's closed port refuses
    the next probe at once, so the survivor needs its next tick (uniform within one interval, the
    loop waiting 0.9-1.0·I) plus N-1 more: min (N-1)·0.9·I, median (N-0.5)·0.95·I, max N·I.
    """
    def model(p: Profile) -> dict[str, float]:
        i, n = p.interval, p.failures
        return {"min": (n - 1) * 0.9 * i, "median": (n - 0.5) * 0.95 * i, "max": n * i}

    c = VENDOR.cluster
    m = model(VENDOR)
    check = {}
    for name, p in PROFILES.items():
        measured = res["profiles"].get(name, {}).get("death_to_active_s", {}).get("median")
        check[name] = {"model_median_s": round(model(p)["median"], 3), "measured_median_s": measured}
    return {"label": VENDOR.label(), "detection_s": c.detection_delay_s(),
            "r1_bound_s": c.detection_delay_s() + c.heartbeat_interval_s,
            "expected_failover_delay_s": rules.expected_failover_delay(c, connect_s=0.5, ports=0, devices=0),
            "model_kill9_min_s": m["min"], "model_kill9_median_s": m["median"], "model_kill9_max_s": m["max"],
            "model_check": check, "measured_death_to_active_s": None}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def wait_for_low_load(limit: float, patience: float, log: Callable[[str], None]) -> None:
    deadline = time.monotonic() + patience
    while (load := load_average()[0]) >= limit and time.monotonic() < deadline:
        log(f"load average {load:.2f} ≥ {limit:g}: waiting (up to {deadline - time.monotonic():.0f} s more)")
        time.sleep(20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few runs and short windows (development, smoke test)")
    mode.add_argument("--long", action="store_true", help="10-minute loss windows, the vendor default measured")
    ap.add_argument("--runs", type=int, help="kill -9 runs a profile (default 20; quick 2)")
    ap.add_argument("--loss-window", type=float, help="seconds of each loss window (default 120; long 600)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where latest.json, latest.md, latest.png go")
    ap.add_argument("--wait-load", type=float, default=None, metavar="SECONDS",
                    help="first wait up to this long for the 1-minute load to drop below 1.5 (default 600; quick 0)")
    ap.add_argument("--profiles", default=",".join(PROFILES),
                    help=f"which of our profiles to measure, comma-separated (default {','.join(PROFILES)})")
    ap.add_argument("--seed", type=int, default=None,
                    help="seed of the kills' random phases (default: a new one, written to latest.json)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="besides the checks alone, what to measure: told (HS_LB_RUNTIME_API), warm (HS_CTI_MODE); "
                         "'checks' for neither (a product before issue 15)")
    ap.add_argument("--only", default="", metavar="ROWS",
                    help=f"only these resource rows, comma-separated ({','.join(ONLY)}): results/resources.json "
                         "and resources.md instead of latest.*; a few minutes")
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--keep-logs", action="store_true", help="copy every part's logs to run/bench-logs/")
    args = ap.parse_args(argv)

    why = netns.unavailable()
    if why:
        print(f"bench: {why}", file=sys.stderr)
        return 2
    plan = Plan.of("quick" if args.quick else "long" if args.long else "bench")
    if args.runs or args.loss_window:
        from dataclasses import replace

        plan = replace(plan, runs=args.runs or plan.runs, loss_window_s=args.loss_window or plan.loss_window_s)
    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"{time.monotonic() - t_start:7.1f}s {msg}", flush=True)

    ka.ensure_installed(log)
    ka.apt_install("haproxy", "haproxy", log)
    netns.cleanup_stale()
    wait_for_low_load(1.5, args.wait_load if args.wait_load is not None else (0 if args.quick else 600), log)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    bench = Bench(plan, args.out, log, seed=seed)
    bench.keep_logs = args.keep_logs
    bench.profiles = [p for p in args.profiles.split(",") if p]
    bench.variants = [v for v in args.variants.split(",") if v and v != "checks"]
    if unknown := [v for v in bench.variants if v not in VARIANTS]:
        print(f"bench: --variants: unknown {', '.join(unknown)} (known: checks, {', '.join(VARIANTS)})",
              file=sys.stderr)
        return 2
    if unknown := [p for p in bench.profiles if p not in PROFILES]:
        print(f"bench: --profiles: unknown {', '.join(unknown)} (known: {', '.join(PROFILES)})", file=sys.stderr)
        return 2
    bench.res["mode"] = plan.mode
    bench.res["machine"] = {
        "cores": os.cpu_count(), "load_at_start": [round(x, 2) for x in load_average()],
        "keepalived": ka.version(), "haproxy": _haproxy_version(), "python": sys.version.split()[0],
        "kernel": os.uname().release, "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty_paths": _git("status", "--porcelain", "--", "hotstandby", "services").count("\n") + 1
        if _git("status", "--porcelain", "--", "hotstandby", "services") else 0,
    }
    bench.res["notes"] = (
        f"{plan.runs} kills a profile (cold and warm CTI), each at a random phase (seed {seed}); loss windows "
        f"{plan.loss_window_s:g} s each, all 9 of ours and 9 of keepalived's combinations, 6 labs side by side; "
        f"vendor default {'measured once and ' if plan.vendor_measured else ''}computed")
    bench.res["command"] = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    bench.res["variants"] = ["checks", *bench.variants]
    if args.only:
        bench.only = [r for r in args.only.split(",") if r]
        if unknown := [r for r in bench.only if r not in ONLY]:
            print(f"bench: --only: unknown {', '.join(unknown)} (known: {', '.join(ONLY)})", file=sys.stderr)
            return 2
        return write_only(bench, args.out, log)
    log(f"bench ({plan.mode}): {bench.res['notes']}; machine {bench.res['machine']}")
    res = bench.run()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(res, indent=2, sort_keys=False) + "\n")
    text = tables(res)
    print()
    print(text)
    chart = None
    if not args.no_chart:
        try:
            from bench.chart import draw

            chart = draw(res, bench.raw, args.out / "latest.png")
        except ImportError as exc:
            log(f"no chart: {exc} (pip install matplotlib, in the dev extras)")
    md = [f"# Benchmark: `{res['command']}`", "", "```", text, "```", ""]
    if chart:
        md += [f"![failover times and one failover's timeline]({chart.name})", ""]
    (args.out / "latest.md").write_text("\n".join(md))
    log(f"wrote {args.out / 'latest.json'}, {args.out / 'latest.md'}" + (f", {chart}" if chart else ""))
    if args.out.resolve() == RESULTS.resolve():
        from bench import readme

        readme.main([])  # the README quotes bench/results/: keep it equal to what was just written
    if res["errors"]:
        print("errors:\n  " + "\n  ".join(res["errors"]), file=sys.stderr)
        return 1
    return 0


def write_only(bench: Bench, out: Path, log: Callable[[str], None]) -> int:
    """--only: run the resource rows and write results/resources.json and resources.md."""
    plan = bench.plan
    bench.res["notes"] = (f"resource rows only ({', '.join(bench.only)}): idle CPU {plan.idle_repeats} windows of "
                          f"{plan.idle_s:g} s (I = 1) and {plan.idle_sprint_s:g} s (I = 0.1), median; peer-link "
                          f"bytes over {plan.bytes_window_s:g} s at the vendor default")
    log(f"bench --only ({plan.mode}): {bench.res['notes']}; machine {bench.res['machine']}")
    res = bench.run_only()
    out.mkdir(parents=True, exist_ok=True)
    (out / "resources.json").write_text(json.dumps(res, indent=2) + "\n")
    text = resource_table(res)
    print()
    print(text)
    (out / "resources.md").write_text("\n".join([f"# Resources: `{res['command']}`", "", "```", text, "```", ""]))
    log(f"wrote {out / 'resources.json'}, {out / 'resources.md'}")
    if res["errors"]:
        print("errors:\n  " + "\n  ".join(res["errors"]), file=sys.stderr)
        return 1
    return 0


def _git(*args: str) -> str:
    """The product's version under test (a run that straddles a commit says so in ``machine``)."""
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def _haproxy_version() -> str:
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    try:
        r = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "haproxy not installed"
    return r.stdout.splitlines()[0] if r.stdout else "haproxy unknown"
