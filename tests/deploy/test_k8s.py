"""deploy/k8s/, checked without a cluster: every manifest parsed and cross-checked.

What a typo in a manifest would otherwise only show at ``kubectl apply`` time or later, in
a crash-looping pod:

- images: the roles run ``memup-cluster:latest`` (the GPU variant ``memup-cluster:gpu``),
  Redis a pinned ``redis:7.x`` image;
- every ``MEMUP_<SECTION>_<KEY>`` variable names a real config field, and each container's
  command line, variables and the experiment ConfigMap resolve with ``load_config``
  exactly as the role will resolve them (``cli.main.build_parser`` parses the arguments);
- every Secret / ConfigMap reference (variables, volumes) names a key that is defined, and
  every ``$(VAR)`` names a variable defined before it;
- probes use ports the container declares; the roles' probes are ``GET /metrics`` on the
  port the role serves its metrics on;
- every container (init containers too) has requests and limits and runs as non-root;
- each kustomization lists every manifest file of its directory and nothing missing;
- plus the deployment's own promises: one learner (Recreate) with its run dir on the PVC,
  actors and scorers with a stable ``--replica auto``, Redis reachable only from the roles
  (ClusterIP, NetworkPolicy) with AOF everysec and noeviction, the GPU patch, no service
  links (they would inject ``MEMUP_*``-looking variables), the ConfigMap equal to
  configs/up_tmaze_lnr_1000.toml and the ACL rules equal to deploy/redis/users.acl;
- the optional CURVE component: the files it mounts for each role, laid out as its Secret
  items say, make a real CURVE handshake with common/curve.py.

Needs PyYAML (skipped without it, except under CI, where it fails).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from cli.main import build_parser
from common.config import ENV_PREFIX, ClusterConfig, load_config

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
        else:
            env[var["name"]] = "0123456789abcdef0123456789abcdef"  # a secret
    return env


# -- the files ------------------------------------------------------------------------


def test_every_manifest_parses_and_names_its_objects() -> None:
    files = manifest_files()
    assert files, "no manifests under deploy/k8s"
    for path in files:
        docs = load_docs(path)
        assert docs, f"{path}: empty"
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path}: {doc}"
            assert doc["metadata"].get("name"), f"{path}: an object without a name"


def test_each_kustomization_lists_every_manifest_of_its_directory() -> None:
    for kust_path in kustomizations():
        kust = yaml.safe_load(kust_path.read_text())
        here = kust_path.parent
        listed = [*kust.get("resources", []),
                  *(p["path"] for p in kust.get("patches", []) if "path" in p)]
        for entry in listed:
            assert (here / entry).exists(), f"{kust_path}: {entry} does not exist"
        own = {p.name for p in here.glob("*.yaml") if p.name != "kustomization.yaml"}
        missing = own - set(listed)
        assert not missing, f"{kust_path} does not list {sorted(missing)}"
        for gen in kust.get("secretGenerator", []):
            for name in gen.get("envs", []):
                assert ((here / name).is_file()
                        or (here / (name + ".example")).is_file()), f"{name}: no template"
    top = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert top["resources"] == ["base"]
    gpu = yaml.safe_load((GPU / "kustomization.yaml").read_text())
    assert gpu["resources"] == ["../base"]
    assert [p["path"] for p in gpu["patches"]] == ["learner-gpu.yaml"]
    assert yaml.safe_load((BASE / "kustomization.yaml").read_text())["namespace"] == "memup"


def test_the_experiment_configmap_is_the_cluster_experiment_verbatim() -> None:
    data = defined_configmaps()["memup-experiment"]
    assert data["experiment.toml"] == EXPERIMENT.read_text(), (
        "deploy/k8s/base/configmap-experiment.yaml differs from "
        "configs/up_tmaze_lnr_1000.toml: copy the file again")


# -- images, commands, configuration ---------------------------------------------------


def test_images() -> None:
    for role, w in role_workloads().items():
        assert w["kind"] == "Deployment", role
        for c in containers(w):
            assert c["image"] == ROLE_IMAGE, f"{role}: {c['image']}"
    (redis,) = [w for w in workloads() if w["kind"] == "StatefulSet"]
    for c in containers(redis):
        assert re.fullmatch(r"redis:7\.\d+(\.\d+)?(-[a-z0-9]+)?", c["image"]), c["image"]
    patch = load_docs(GPU / "learner-gpu.yaml")[0]
    images = [c["image"] for c in patch["spec"]["template"]["spec"]["containers"]]
    assert images == [GPU_IMAGE]


@pytest.mark.parametrize("role", ROLES)
def test_role_command_lines_parse_and_their_config_resolves(role: str) -> None:
    w = role_workloads()[role]
    (c,) = containers(w, init=False)
    argv = memup_argv(c)
    assert argv[0] == role
    args = build_parser().parse_args(argv)
    assert args.command == role
    if role != "learner":
        assert args.replica == "auto", f"{role}: a stable replica id per pod (--replica auto)"
    assert args.cluster_config is not None, f"{role}: --config is missing"
    configmap, key = mounted_file(w, c, str(args.cluster_config))
    toml_text = defined_configmaps()[configmap][key]
    env = literal_env(c)
    config = load_config(None, args.overrides, environ=env,
                         values=tomllib.loads(toml_text))
    assert config.redis.url.startswith(f"redis://{role}:")
    assert config.redis.url.endswith("@redis:6379/0")
    assert config.run.metrics_addr == "0.0.0.0"
    assert getattr(config, role).metrics_port == METRICS_PORTS[role]
    if role == "scorer":
        assert (config.scorer.bind_host, config.scorer.port) == ("0.0.0.0", 5555)
        (advertise,) = [v for v in c["env"] if v["name"] == "MEMUP_SCORER_ADVERTISE_HOST"]
        assert advertise["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    if role == "learner":
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert any(config.run.dir.startswith(m.rstrip("/") + "/") for m in mounts
                   if m.startswith("/data")), f"run.dir {config.run.dir} is not on the PVC"


def test_every_memup_variable_names_a_config_field() -> None:
    fields = config_env_fields()
    env_sources = list(all_containers())
    patch = load_docs(GPU / "learner-gpu.yaml")[0]
    env_sources += [("gpu patch", c) for c in patch["spec"]["template"]["spec"]["containers"]]
    seen = 0
    for where, c in env_sources:
        for var in c.get("env", []):
            name = var["name"]
            if not name.startswith(ENV_PREFIX):
                continue
            # load_config's rule: section = first word after MEMUP_, key = the rest.
            section, _, key = name[len(ENV_PREFIX):].lower().partition("_")
            assert section in fields, f"{where}: {name}: no config section {section!r}"
            assert key in fields[section], f"{where}: {name}: no field {section}.{key}"
            if "value" in var:
                load_config(None, [], environ={name: str(var["value"])})  # coerces
            seen += 1
    assert seen >= 8


def test_secret_and_configmap_references_are_defined() -> None:
    secrets, configmaps = defined_secrets(), defined_configmaps()
    assert set(secrets["memup-redis"]) >= {f"{r}-password" for r in ROLES}
    for where, c in all_containers():
        defined: set[str] = set()
        for var in c.get("env", []):
            source = var.get("valueFrom", {})
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                assert ref["key"] in secrets.get(ref["name"], set()), f"{where}: {ref}"
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["key"] in configmaps.get(ref["name"], {}), f"{where}: {ref}"
            for used in VAR_REF.findall(str(var.get("value", ""))):
                assert used in defined, f"{where}: $({used}) is not defined before {var['name']}"
            defined.add(var["name"])
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, f"{where}: {source}"
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configmaps, f"{where}: {source}"
    for w in workloads():
        for v in w["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps, v
            if "secret" in v:
                assert v["secret"]["secretName"] in secrets, v


def test_scripts_and_files_the_containers_run_are_in_their_configmaps() -> None:
    for w in workloads():
        for c in containers(w):
            for word in [*c.get("command", []), *c.get("args", [])]:
                if str(word).startswith("/etc/"):
                    configmap, key = mounted_file(w, c, str(word))
                    assert key in defined_configmaps()[configmap], f"{c['name']}: {word}"


# -- probes, resources, security --------------------------------------------------------


def probe_port(probe: dict[str, Any]) -> int | str | None:
    for kind in ("httpGet", "tcpSocket", "grpc"):
        if kind in probe:
            return probe[kind]["port"]
    return None


def test_probes_use_declared_ports_and_roles_probe_their_metrics() -> None:
    for where, c in all_containers():
        if "initContainers" in where:
            continue
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = c.get(kind)
            if probe is None:
                continue
            port = probe_port(probe)
            if port is not None:
                assert port in ports or port in ports.values(), f"{where} {kind}: port {port}"
    for role, w in role_workloads().items():
        (c,) = containers(w, init=False)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["metrics"] == METRICS_PORTS[role]
        for kind in ("readinessProbe", "livenessProbe"):
            get = c[kind]["httpGet"]
            assert get["path"] == "/metrics", f"{role} {kind}"
            assert ports.get(get["port"], get["port"]) == METRICS_PORTS[role], f"{role} {kind}"
    (redis,) = [w for w in workloads() if w["kind"] == "StatefulSet"]
    (c,) = containers(redis, init=False)
    assert c.get("readinessProbe") and c.get("livenessProbe"), "redis needs both probes"


def test_every_container_has_resources_and_runs_as_non_root() -> None:
    names = []
    for w in workloads():
        pod = w["spec"]["template"]["spec"]
        for c in containers(w):
            where = f"{w['metadata']['name']}/{c['name']}"
            names.append(where)
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(part, {})), (
                    f"{where}: resources.{part} needs cpu and memory")
            security = c.get("securityContext", {})
            assert security.get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert pod["securityContext"].get("runAsUser", 0) > 0, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        # Service links would inject e.g. MEMUP_SCORER_PORT=tcp://... for a Service named
        # memup-scorer, which the config would read (and refuse).
        assert pod.get("enableServiceLinks") is False, w["metadata"]["name"]
        assert pod.get("automountServiceAccountToken") is False, w["metadata"]["name"]
    assert len(names) == 5  # actor, scorer, learner, redis and its init container
    for svc in of_kind(base_objects(), "Service"):
        assert not svc["metadata"]["name"].lower().startswith("memup"), svc["metadata"]


# -- what the deployment promises --------------------------------------------------------


def test_one_learner_at_a_time_with_its_run_dir_on_a_volume() -> None:
    w = role_workloads()["learner"]
    assert w["spec"]["replicas"] == 1
    assert w["spec"]["strategy"]["type"] == "Recreate"
    pvc_names = {o["metadata"]["name"] for o in of_kind(base_objects(),
                                                         "PersistentVolumeClaim")}
    claims = [v["persistentVolumeClaim"]["claimName"]
              for v in w["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims and set(claims) <= pvc_names
    (c,) = containers(w, init=False)
    assert "nvidia.com/gpu" not in c["resources"]["limits"], "the base learner is CPU"
    assert w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60


def test_gpu_patch_adds_one_gpu_to_the_learner_only() -> None:
    (patch,) = load_docs(GPU / "learner-gpu.yaml")
    assert (patch["kind"], patch["metadata"]["name"]) == ("Deployment", "learner")
    (c,) = patch["spec"]["template"]["spec"]["containers"]
    assert c["name"] == "learner"
    assert str(c["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    env = {v["name"]: v["value"] for v in c["env"]}
    assert load_config(None, [], environ=env).run.device == "cuda"


def test_redis_is_persistent_private_and_admits_only_the_roles() -> None:
    objects = base_objects()
    conf = defined_configmaps()["redis-config"]["redis.conf"]
    settings = {line.split()[0]: " ".join(line.split()[1:]) for line in conf.splitlines()
                if line.strip() and not line.lstrip().startswith("#")}
    assert settings["appendonly"] == "yes"
    assert settings["appendfsync"] == "everysec"
    assert settings["no-appendfsync-on-rewrite"] == "no"
    assert settings["maxmemory-policy"] == "noeviction"
    assert settings["aclfile"].startswith("/acl/")
    (redis,) = [w for w in workloads() if w["kind"] == "StatefulSet"]
    assert redis["spec"]["volumeClaimTemplates"], "Redis data must be on a PVC"
    (server,) = containers(redis, init=False)
    data_mount = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    assert data_mount[redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]] == (
        settings["dir"])
    for svc in of_kind(objects, "Service"):
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", svc["metadata"]["name"]
        assert "externalIPs" not in svc["spec"]
    assert not of_kind(objects, "Ingress")
    (policy,) = [p for p in of_kind(objects, "NetworkPolicy")
                 if p["spec"]["podSelector"].get("matchLabels", {}).get(
                     "app.kubernetes.io/name") == "redis"]
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [6379]
    (source,) = rule["from"]
    (component,) = [e for e in source["podSelector"]["matchExpressions"]
                    if e["key"] == "app.kubernetes.io/component"]
    assert sorted(component["values"]) == sorted(ROLES)
    deny = [p for p in of_kind(objects, "NetworkPolicy") if p["spec"]["podSelector"] == {}]
    assert deny and "ingress" not in deny[0]["spec"], "a default-deny ingress policy"
    zmq = [p for p in of_kind(objects, "NetworkPolicy")
           if any(port.get("port") == 5555 for r in p["spec"].get("ingress", [])
                  for port in r.get("ports", []))]
    assert len(zmq) == 1
    (rule,) = zmq[0]["spec"]["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "learner")


def acl_rules(text: str) -> dict[str, set[str]]:
    """user -> its rule words, without on/off, passwords and resets."""
    found = {}
    for line in text.splitlines():
        words = shlex.split(line) if line.startswith("user ") else []
        if len(words) > 2:
            found[words[1]] = {w for w in words[2:] if w not in (
                "on", "off", "reset", "resetkeys", "resetchannels", "-@all")
                and not w.startswith((">", "#", "<"))}
    return found


def test_acl_rules_are_the_compose_stack_rules() -> None:
    data = defined_configmaps()["redis-config"]
    ours = {role: acl_rules(f"user {role} on {data[f'acl-{role}.rules']}")[role]
            for role in ROLES}
    script = data["render-acl.sh"]
    for role in ROLES:
        assert f"acl-{role}.rules" in script and f"user {role} on" in script
    # the compose stack's default-user line: off, yet allowed to replay the AOF's transactions
    assert 'echo "user default reset off ~memup:* +@all -@dangerous"' in script
    for role, rules in ours.items():
        assert not {r for r in rules if r.startswith("+@") or r in ("allkeys", "~*")}, role
    if not COMPOSE_ACL.is_file():
        pytest.skip("deploy/redis/users.acl is not there to compare with")
    theirs = acl_rules(COMPOSE_ACL.read_text())
    for role in ROLES:
        assert ours[role] == theirs[role], (
            f"ACL of {role} differs from deploy/redis/users.acl: only in k8s "
            f"{sorted(ours[role] - theirs[role])}, only in compose "
            f"{sorted(theirs[role] - ours[role])}")


# -- the optional CURVE component --------------------------------------------------------


def curve_patches() -> dict[str, dict[str, Any]]:
    kust = yaml.safe_load((CURVE / "kustomization.yaml").read_text())
    assert kust["kind"] == "Component"
    found = {}
    for entry in kust["patches"]:
        (doc,) = load_docs(CURVE / entry["path"])
        found[doc["metadata"]["name"]] = doc
    assert sorted(found) == ["learner", "scorer"]
    return found


def test_no_mount_is_nested_in_another() -> None:
    """A volume mounted inside another (e.g. the CURVE keys inside the ConfigMap mount at
    /etc/memup) needs a mount point in a read-only volume: keep them side by side."""
    added = {c["name"]: c.get("volumeMounts", []) for p in curve_patches().values()
             for c in p["spec"]["template"]["spec"]["containers"]}
    for w in workloads():
        for c in containers(w):
            mounts = [*c.get("volumeMounts", []), *added.get(c["name"], [])]
            for a, b in itertools.permutations([m["mountPath"] for m in mounts], 2):
                assert not b.startswith(a.rstrip("/") + "/"), f"{c['name']}: {b} inside {a}"


def test_curve_component_files_make_a_curve_handshake(tmp_path: Path) -> None:
    zmq = pytest.importorskip("zmq")
    from common.curve import create_keys
    from common.zmq_io import close, dealer, router

    kust = yaml.safe_load((CURVE / "kustomization.yaml").read_text())
    (gen,) = kust["secretGenerator"]
    keys = create_keys(tmp_path / "keys")  # what `memup keys deploy/k8s/curve/keys` makes
    secret = {}
    for item in gen["files"]:
        name, _, source = item.partition("=")
        assert source.startswith("keys/"), item
        secret[name] = (keys / source.removeprefix("keys/")).read_bytes()
    roots = {}
    for role, patch in curve_patches().items():
        pod = patch["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = {v["name"]: v["value"] for v in c["env"]}
        directory = load_config(None, [], environ=env).zmq.curve_keys
        (mount,) = c["volumeMounts"]
        assert mount["mountPath"] == directory and mount["readOnly"] is True
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == gen["name"]
        mode = volume["secret"]["defaultMode"]
        assert mode & 0o040 and not mode & 0o007, f"{role}: group-readable, not world"
        base = role_workloads()[role]["spec"]["template"]["spec"]["securityContext"]
        assert base.get("fsGroup"), f"{role}: the pod's fsGroup is what may read the keys"
        root = tmp_path / role
        for item in volume["secret"]["items"]:  # the files this role's container sees
            (root / item["path"]).parent.mkdir(parents=True, exist_ok=True)
            (root / item["path"]).write_bytes(secret[item["key"]])
        roots[role] = root
    assert not (roots["learner"] / "server.key_secret").exists(), "the learner needs no secret"
    assert not (roots["scorer"] / "learner.key_secret").exists(), "scorers need no learner secret"
    ctx = zmq.Context()
    server, port = router(ctx, "127.0.0.1", 0, 1 << 20, str(roots["scorer"]))
    client = dealer(ctx, 1 << 20, str(roots["learner"]))
    try:
        client.connect(f"tcp://127.0.0.1:{port}")
        client.send(b"ping")
        assert server.poll(5000), "no CURVE handshake with the component's files"
        assert server.recv_multipart()[1] == b"ping"
    finally:
        client.close(0)
        close(server)
        ctx.term()
