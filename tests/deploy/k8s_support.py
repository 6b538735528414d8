"""Helpers of the k8s deploy tests (see test_k8s.py)."""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from common.config import ClusterConfig

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        raise
    pytest.skip("PyYAML is missing: pip install -e '.[dev]'", allow_module_level=True)


ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
GPU = K8S / "gpu"
CURVE = K8S / "curve"
EXPERIMENT = ROOT / "configs" / "up_tmaze_lnr_1000.toml"
COMPOSE_ACL = ROOT / "deploy" / "redis" / "users.acl"
ROLE_IMAGE = "memup-cluster:latest"
GPU_IMAGE = "memup-cluster:gpu"
ROLES = ("actor", "scorer", "learner")
METRICS_PORTS = {"actor": 9101, "scorer": 9102, "learner": 9103}
WORKLOADS = ("Deployment", "StatefulSet")
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


# -- loading --------------------------------------------------------------------------


@functools.cache
def _parsed(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.safe_load_all(path.read_text()) if d)


def load_docs(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of ``path`` (parsed once per session; do not modify them)."""
    return list(_parsed(path))


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def base_objects() -> list[dict[str, Any]]:
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return [d for name in kust["resources"] for d in load_docs(BASE / name)]


def of_kind(objects: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in kinds]


def workloads() -> list[dict[str, Any]]:
    return of_kind(base_objects(), *WORKLOADS)


def containers(workload: dict[str, Any], init: bool = True) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return list(spec.get("initContainers", []) if init else []) + list(spec["containers"])


def role_of(workload: dict[str, Any]) -> str:
    return workload["metadata"]["labels"]["app.kubernetes.io/component"]


def role_workloads() -> dict[str, dict[str, Any]]:
    found = {role_of(w): w for w in workloads() if role_of(w) in ROLES}
    assert sorted(found) == sorted(ROLES), f"one Deployment per role expected, got {found}"
    return found


def all_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for w in workloads():
        for c in containers(w):
            yield f"{w['kind']}/{w['metadata']['name']}/{c['name']}", c


def env_file_keys(path: Path) -> set[str]:
    """Keys of a kustomize env file (``key=value`` lines; # comments)."""
    keys = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.add(line.partition("=")[0].strip())
    return keys


def defined_secrets() -> dict[str, set[str]]:
    """Secret name -> keys, from Secret manifests and the kustomization's secretGenerator
    (an env file that is not committed is read from its ``.example``)."""
    found = {o["metadata"]["name"]: set(o.get("data", {})) | set(o.get("stringData", {}))
             for o in of_kind(base_objects(), "Secret")}
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    for gen in kust.get("secretGenerator", []):
        keys = found.setdefault(gen["name"], set())
        for name in gen.get("envs", []):
            path = BASE / name
            keys |= env_file_keys(path if path.is_file() else path.with_name(path.name
                                                                               + ".example"))
        keys |= {item.partition("=")[0] for item in gen.get("literals", [])}
        keys |= {Path(item.partition("=")[0] if "=" in item else item).name
                 for item in gen.get("files", [])}
    return found


def defined_configmaps() -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: dict(o.get("data", {}))
            for o in of_kind(base_objects(), "ConfigMap")}


def config_env_fields() -> dict[str, set[str]]:
    return {section: set(get_type_hints(kind))
            for section, kind in get_type_hints(ClusterConfig).items()}


def memup_argv(container: dict[str, Any]) -> list[str]:
    """The ``memup`` command line of a role container (the image's entrypoint runs
    ``memup "$@"``; an explicit command must be ``memup`` too)."""
    command = container.get("command")
    assert command in (None, ["memup"]), f"{container['name']}: unexpected command {command}"
    return [str(a) for a in container["args"]]


def mounted_file(workload: dict[str, Any], container: dict[str, Any], path: str
                 ) -> tuple[str, str]:
    """(ConfigMap name, key) of the file ``path`` a container sees through a mount."""
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        volume = volumes.get(mount["name"], {})  # absent: a volumeClaimTemplate
        if path.startswith(prefix) and "configMap" in volume:
            return volume["configMap"]["name"], path[len(prefix):]
    raise AssertionError(f"{container['name']}: {path} is on no ConfigMap mount")


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's variables with literal values, ``$(VAR)`` expanded; values from
    the downward API or Secrets become placeholders of the right shape."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = VAR_REF.sub(lambda m: env.get(m[1], m[0]), str(var["value"]))
        elif "fieldRef" in var.get("valueFrom", {}):
            env[var["name"]] = "10.0.0.7"  # status.podIP
        elif "configMapKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = defined_configmaps()[ref["name"]][ref["key"]]
        else:
            env[var["name"]] = "0123456789abcdef0123456789abcdef"  # a secret
    return env


# -- probes, resources, security --------------------------------------------------------


def probe_port(probe: dict[str, Any]) -> int | str | None:
    for kind in ("httpGet", "tcpSocket", "grpc"):
        if kind in probe:
            return probe[kind]["port"]
    return None


def acl_rules(text: str) -> dict[str, list[str]]:
    """user -> its rule words in order (selectors' order and grouping matter), without
    on/off, passwords and resets."""
    found = {}
    for line in text.splitlines():
        words = shlex.split(line) if line.startswith("user ") else []
        if len(words) > 2:
            found[words[1]] = [w for w in words[2:] if w not in (
                "on", "off", "reset", "resetkeys", "resetchannels", "-@all")
                and not w.startswith((">", "#", "<"))]
    return found


# -- the CURVE component (both variants include it) -------------------------------------


def curve_patches() -> dict[str, dict[str, Any]]:
    kust = yaml.safe_load((CURVE / "kustomization.yaml").read_text())
    assert kust["kind"] == "Component"
    found = {}
    for entry in kust["patches"]:
        (doc,) = load_docs(CURVE / entry["path"])
        found[doc["metadata"]["name"]] = doc
    assert sorted(found) == ["learner", "scorer"]
    return found
