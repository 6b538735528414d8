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
- the CURVE component (both variants include it): the files it mounts for each role, laid
  out as its Secret items say, make a real CURVE handshake with common/curve.py.

Needs PyYAML (skipped without it, except under CI, where it fails).
"""

from __future__ import annotations

import os
import re
import tomllib

import pytest

from cli.main import build_parser
from common.config import ENV_PREFIX, load_config

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        raise
    pytest.skip("PyYAML is missing: pip install -e '.[dev]'", allow_module_level=True)
from tests.deploy.k8s_support import (
    BASE,
    EXPERIMENT,
    GPU,
    GPU_IMAGE,
    K8S,
    METRICS_PORTS,
    ROLE_IMAGE,
    ROLES,
    VAR_REF,
    all_containers,
    config_env_fields,
    containers,
    defined_configmaps,
    defined_secrets,
    kustomizations,
    literal_env,
    load_docs,
    manifest_files,
    memup_argv,
    mounted_file,
    probe_port,
    role_workloads,
    workloads,
)

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
    assert top["components"] == ["curve"], "CURVE is on by default"
    gpu = yaml.safe_load((GPU / "kustomization.yaml").read_text())
    assert gpu["resources"] == ["../base"]
    assert gpu["components"] == ["../curve"], "CURVE is on by default"
    assert [p["path"] for p in gpu["patches"]] == ["learner-gpu.yaml"]
    assert yaml.safe_load((BASE / "kustomization.yaml").read_text())["namespace"] == "memup"


def test_the_experiment_configmap_is_the_cluster_experiment_verbatim() -> None:
    data = defined_configmaps()["memup-experiment"]
    assert data["experiment.toml"] == EXPERIMENT.read_text(), (
        "deploy/k8s/base/configmap-experiment.yaml differs from "
        "configs/up_tmaze_lnr_1000.toml: copy the file again")
    # run-name (Redis's ACL and every role's MEMUP_RUN_NAME) names the file's run.
    assert data["run-name"] == tomllib.loads(data["experiment.toml"])["run"]["name"]


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
    assert config.run.name == defined_configmaps()["memup-experiment"]["run-name"]
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
