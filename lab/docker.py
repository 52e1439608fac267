"""A private Docker engine for tests and benchmarks: our own dockerd, never one we did not start.

The engine keeps to itself so that the fault lab, the bench and the HAProxy tests that run after it
see the host as it was:

- its socket, pid file, exec-root and CLI config live under ``/run/hs-docker/``, its data-root under
  ``/var/tmp/hs-docker/`` (removed when it stops, unless the caller keeps one to reuse images);
- its default bridge is ``hs-docker0`` at 198.19.250.1/24, created here and deleted at stop, and the
  networks compose makes come from 198.19.0.0/17 in /24s: all inside 198.18.0.0/15 (RFC 2544) and
  away from the fault lab's 198.18.<n>.0/24; never 172.17/16 nor any private range;
- ``iptables``, ``ip6tables``, ``ip-forward`` and ``ip-masq`` are off: dockerd writes no firewall rule
  and no sysctl; published ports go through its userland proxy and must name a loopback address;
- one engine at a time on a machine (a lock file): the bridge address and the pool are fixed.

``host_network_state()`` snapshots the root namespace's firewall and forwarding sysctls, so a caller
can check that nothing changed. Images come without a registry: ``base_tarball()`` makes a Debian
root filesystem with mmdebstrap (kept between runs in a cache directory) for ``docker import``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BRIDGE = "hs-docker0"
BRIDGE_ADDRESS = "198.19.250.1/24"
ADDRESS_POOL = {"base": "198.19.0.0/17", "size": 24}
STATE_DIR = Path("/run/hs-docker")
DATA_DIR = Path("/var/tmp/hs-docker")
LOCK = Path("/run/hs-docker.lock")
# For containers' `dns`: our bridge's own address, where lab/dns.py answers NXDOMAIN for every name
# while the engine runs. Docker's embedded DNS answers container names itself and forwards the rest;
# with no route out of our networks, a forward to the host's resolver goes unanswered and the
# container's libc waits 5 s per try (seen: a node's ticks took 10 s while its stopped peer's name
# was looked up). Not in daemon.json: builds on the host network do need the host's resolver.
NXDOMAIN_DNS = BRIDGE_ADDRESS.split("/")[0]
ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("HS_DOCKER_CACHE", "/var/cache/hotstandby"))
SYSCTLS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.bridge.bridge-nf-call-iptables",
           "net.bridge.bridge-nf-call-ip6tables")

# The node image's local base: Debian 12 with Python 3.11 (the version python:3.11-slim carries) and
# venv, no documentation; perl (pulled in only by usrmerge, which a merged /usr no longer needs) is
# purged, 50 MB less.
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_MMDEBSTRAP_ARGS = (
    "--variant=minbase",
    "--include=" + ",".join(BASE_PACKAGES),
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    '--customize-hook=chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get purge -y usrmerge perl'
    " libperl5.36 perl-modules-5.36 libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl",
)


class DockerError(RuntimeError):
    """A docker (or compose, mmdebstrap) command failed: the text holds the command and its output."""


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=dict(env) if env else None,
                       cwd=cwd)
    if check and r.returncode != 0:
        out = (r.stderr.strip() or r.stdout.strip())[-4000:]
        raise DockerError(f"{' '.join(cmd)} -> {r.returncode}: {out}")
    return r


def unavailable() -> str | None:
    """Why a private engine cannot run here (a skip or failure reason), or None when it can."""
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    for tool in ("dockerd", "docker", "ip"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (apt-get install docker.io iproute2)"
    return None


def host_network_state() -> dict[str, str]:
    """The root namespace's iptables and ip6tables rules (all tables) and forwarding sysctls, as text."""
    state: dict[str, str] = {}
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            out = run([tool], check=False).stdout
            # Comment lines carry a timestamp; counters ([n:m]) change with traffic.
            state[tool] = "\n".join(
                line.split(" [", 1)[0] if line.startswith(":") else line
                for line in out.splitlines() if not line.startswith("#"))
    for name in SYSCTLS:
        path = Path("/proc/sys") / name.replace(".", "/")
        state[name] = path.read_text().strip() if path.exists() else "absent"
    return state


def _bridges() -> set[str]:
    out = run(["ip", "-j", "link", "show", "type", "bridge"], check=False).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


@dataclass
class Dockerd:
    """Our own dockerd: ``start()``, the ``docker()`` CLI against it, ``stop()`` (also on a failed start)."""

    data_root: Path | None = None  # None: a fresh one, removed at stop; else kept (images reused)
    state: Path = STATE_DIR
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    dns: subprocess.Popen[bytes] | None = None
    _lock: IO[str] | None = None
    _own_root: bool = False
    _networks: set[str] = field(default_factory=set)

    @property
    def socket(self) -> Path:
        return self.state / "docker.sock"

    def start(self, timeout: float = 60) -> Dockerd:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        self._lock = LOCK.open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock.close()
            self._lock = None
            raise DockerError(f"another private dockerd holds {LOCK}: one at a time on a machine") from exc
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        self._clean_stale()
        self.state.mkdir(parents=True, exist_ok=True)
        if self.data_root is None:
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            self.data_root = DATA_DIR / f"root-{os.getpid()}"
            self._own_root = True
        self.data_root.mkdir(parents=True, exist_ok=True)
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        self.dns = subprocess.Popen([sys.executable, "-m", "lab.dns", "--bind", f"{NXDOMAIN_DNS}:53"], cwd=ROOT,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
        config = {
            # A bridge we made (no "bip": that would name docker0) and compose's networks from our pool.
            "bridge": BRIDGE,
            "default-address-pools": [ADDRESS_POOL],
            "iptables": False,
            "ip6tables": False,
            "ip-forward": False,
            "ip-masq": False,
            "userland-proxy": True,
            "storage-driver": "overlay2",
            "hosts": [f"unix://{self.socket}"],
            "data-root": str(self.data_root),
            "exec-root": str(self.state / "exec"),
            "pidfile": str(self.state / "dockerd.pid"),
            "log-driver": "json-file",
        }
        (self.state / "daemon.json").write_text(json.dumps(config, indent=2))
        cli = self.state / "cli"  # the docker CLI's config: never the host user's (credential helpers)
        cli.mkdir(exist_ok=True)
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(cli),
                    "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            self.env.pop(var, None)
        log: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            log = self.log_path.open("ab")
        self.proc = subprocess.Popen(["dockerd", "--config-file", str(self.state / "daemon.json")],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        (self.state / "owner").write_text(f"{os.getpid()} {self.proc.pid} {self.dns.pid}\n")
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise DockerError(f"dockerd exited with {self.proc.returncode} (log: {self.log_path})")
            if self.docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise DockerError(f"dockerd did not answer on {self.socket} within {timeout:.0f} s")
            time.sleep(0.1)

    def _clean_stale(self) -> None:
        """What a killed run of ours left (we hold the lock, so no live run owns it): its dockerd, its DNS,
        its bridge. Each pid is checked to still be that program before it is signalled."""
        owner = self.state / "owner"
        if owner.exists():
            pids = owner.read_text().split()[1:]
            for pid_text, marker in zip(pids, (b"dockerd", b"lab.dns"), strict=False):
                with contextlib.suppress(ValueError, OSError):
                    pid = int(pid_text)
                    if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGTERM)
                        _wait_gone(pid, 30)
            owner.unlink(missing_ok=True)
        if BRIDGE in _bridges():
            run(["ip", "link", "del", BRIDGE], check=False)

    def docker(self, *args: str, timeout: float = 120, check: bool = True,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], env=self.env, timeout=timeout, check=check, cwd=cwd)

    def stop(self) -> None:
        """Stop dockerd by its pid and remove every bridge it made; remove its data-root if we made it."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(Exception):
                    ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
                    if ids:
                        self.docker("rm", "-f", *ids, check=False, timeout=120)
                    nets = self.docker("network", "ls", "-q", "--filter", "driver=bridge", check=False).stdout
                    self._networks |= {f"br-{n[:12]}" for n in nets.split()}
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            if self.dns is not None:
                self.dns.terminate()
                self.dns.wait(timeout=10)
                self.dns = None
            for bridge in (self._networks | {BRIDGE}) & _bridges():
                run(["ip", "link", "del", bridge], check=False)
            (self.state / "owner").unlink(missing_ok=True)
            if self._own_root and self.data_root is not None:
                _unmount_under(self.data_root)
                _unmount_under(self.state / "exec")
                shutil.rmtree(self.data_root, ignore_errors=True)
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    # Images ------------------------------------------------------------------------------------------

    def image_exists(self, tag: str) -> bool:
        return self.docker("image", "inspect", tag, check=False).returncode == 0

    def image_size(self, tag: str) -> int:
        """Bytes, as `docker images` counts them (all layers, uncompressed)."""
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())

    def import_tarball(self, tarball: Path, tag: str) -> None:
        self.docker("import", str(tarball), tag, timeout=600)

    def build(self, context: Path, tag: str, *, dockerfile: Path | None = None, target: str | None = None,
              build_args: Mapping[str, str] | None = None, network: str | None = None,
              timeout: float = 1200) -> None:
        args = ["build", "--quiet", "--tag", tag]
        if dockerfile is not None:
            args += ["--file", str(dockerfile)]
        if target:
            args += ["--target", target]
        if network:
            args += ["--network", network]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        self.docker(*args, str(context), timeout=timeout)

    def inspect(self, container: str) -> dict[str, Any]:
        data = json.loads(self.docker("inspect", container).stdout)
        assert isinstance(data, list) and data
        return dict(data[0])


def base_tarball(cache: Path = CACHE_DIR, *, timeout: float = 1200) -> tuple[Path, bool]:
    """The local base image's root filesystem as a tarball, made by mmdebstrap once and then kept in
    ``cache`` (its name carries a hash of how it is made, so a changed recipe makes a new one).
    Returns (path, True when it came from the cache)."""
    key = hashlib.sha256(json.dumps([BASE_SUITE, *BASE_MMDEBSTRAP_ARGS]).encode()).hexdigest()[:12]
    path = cache / f"hs-base-{BASE_SUITE}-{key}.tar"
    if path.is_file():
        return path, True
    _remove(path)  # a directory: what this code left before it named the format (mmdebstrap's own guess)
    if shutil.which("mmdebstrap") is None:
        raise DockerError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        # The format named: mmdebstrap guesses it from the target's name, and "x.partial" reads as a directory.
        run(["mmdebstrap", "--format=tar", *BASE_MMDEBSTRAP_ARGS, BASE_SUITE, str(partial)], timeout=timeout)
        partial.rename(path)  # atomic: a concurrent reader never sees half a tarball
    finally:
        partial.unlink(missing_ok=True)
    for old in cache.glob(f"hs-base-{BASE_SUITE}-*.tar"):
        if old != path:
            _remove(old)
    return path, False


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@dataclass
class Compose:
    """One compose project on a private engine: ``docker-compose`` (v1) or ``docker compose`` (v2)."""

    engine: Dockerd
    project: str
    files: Sequence[Path]
    env: Mapping[str, str] = field(default_factory=dict)
    profiles: Sequence[str] = ()

    @property
    def command(self) -> list[str]:
        return compose_command(self.engine)

    def __call__(self, *args: str, timeout: float = 300, check: bool = True,
                 env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [*self.command, "--project-name", self.project]
        for path in self.files:
            cmd += ["--file", str(path)]
        for profile in self.profiles:
            cmd += ["--profile", profile]
        return run([*cmd, *args], env={**self.engine.env, **self.env, **(env or {})}, timeout=timeout, check=check,
                   cwd=Path(self.files[0]).parent)

    def container(self, service: str) -> str:
        """The container id of a service (running or not)."""
        out = self("ps", "-a", "-q", service).stdout.split()
        if len(out) != 1:
            raise DockerError(f"{service}: expected one container, found {out}")
        return out[0]

    def address(self, service: str) -> str:
        """The service container's address on its (first) network, or '' when it has none."""
        networks = self.engine.inspect(self.container(service))["NetworkSettings"]["Networks"]
        return next((str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress")), "")

    def network(self) -> str:
        return f"{self.project}_default"


def compose_command(engine: Dockerd) -> list[str]:
    """`docker compose` (v2) when the plugin is there and HS_COMPOSE is not "v1", else `docker-compose`."""
    want = os.environ.get("HS_COMPOSE", "")
    if want != "v1" and engine.docker("compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    if want == "v2":
        raise DockerError("HS_COMPOSE=v2 but `docker compose` (the Compose v2 plugin) is not installed")
    if shutil.which("docker-compose") is None:
        raise DockerError("neither `docker compose` nor docker-compose is installed (apt-get install docker-compose)")
    return ["docker-compose"]


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


def _unmount_under(root: Path) -> None:
    """Lazily unmount whatever is still mounted below ``root`` (overlays of a dockerd that was killed)."""
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        run(["umount", "-l", mount], check=False)


@contextlib.contextmanager
def private_dockerd(**kwargs: Any) -> Iterator[Dockerd]:
    engine = Dockerd(**kwargs).start()
    try:
        yield engine
    finally:
        engine.stop()
