"""deploy/k8s/, security and state: non-root containers with limits, one learner on a
volume, the GPU patch, Redis private and persistent with the compose ACL rules, CURVE.

The checks of the manifests' wiring are in test_k8s.py; shared helpers in k8s_support.py.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from common.config import load_config

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        raise
    pytest.skip("PyYAML is missing: pip install -e '.[dev]'", allow_module_level=True)
from tests.deploy.compose_support import redis_version
from tests.deploy.k8s_support import (
    COMPOSE_ACL,
    CURVE,
    GPU,
    ROLES,
    acl_rules,
    base_objects,
    containers,
    curve_patches,
    defined_configmaps,
    load_docs,
    of_kind,
    role_workloads,
    workloads,
)


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


def test_acl_rules_are_the_compose_stack_rules() -> None:
    data = defined_configmaps()["redis-config"]
    ours = {role: acl_rules(f"user {role} on {data[f'acl-{role}.rules']}")[role]
            for role in ROLES}
    script = data["render-acl.sh"]
    for role in ROLES:
        assert f"acl-{role}.rules" in script and f"user {role} on" in script
    # the compose stack's default-user line: off, yet allowed to replay the AOF's transactions
    assert 'echo "user default reset off ~memup:{{RUN_NAME}}:* +@all -@dangerous"' in script
    for role, rules in ours.items():
        assert not {r for r in rules if r.startswith("+@") or r in ("allkeys", "~*")}, role
        patterns = [r.strip("()") for r in rules if r.strip("(").startswith(("~", "%"))]
        assert patterns and all(p.split("~", 1)[1].startswith("memup:{{RUN_NAME}}:")
                                for p in patterns), f"{role}: a pattern beyond the run"
    if not COMPOSE_ACL.is_file():
        pytest.skip("deploy/redis/users.acl is not there to compare with")
    theirs = acl_rules(COMPOSE_ACL.read_text())
    for role in ROLES:
        assert ours[role] == theirs[role], (
            f"ACL of {role} differs from deploy/redis/users.acl:\n  k8s     {ours[role]}\n"
            f"  compose {theirs[role]}")


def _render_k8s_acl(tmp_path: Path, run: str) -> subprocess.CompletedProcess[str]:
    """The init container's render-acl.sh, run here with its paths moved into tmp_path."""
    data = defined_configmaps()["redis-config"]
    rules, out = tmp_path / "redis-config", tmp_path / "acl"
    rules.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    for name, text in data.items():
        (rules / name).write_text(text)
    script = data["render-acl.sh"].replace("/etc/redis-config", str(rules)).replace(
        "/acl/", f"{out}/")
    env = {"PATH": os.environ.get("PATH", ""), "RUN_NAME": run,
           **{f"{k.upper()}_PASSWORD": f"{k}0123456789abcdef" for k in
              ("actor", "scorer", "learner", "healthcheck")}}
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=30)


def test_the_init_container_renders_an_acl_file_redis_loads(tmp_path: Path) -> None:
    from tests.deploy.compose_support import free_port, redis_server_7

    server = redis_server_7()
    proc = _render_k8s_acl(tmp_path, "tmaze-lnr-1000")
    assert proc.returncode == 0, proc.stderr
    acl = (tmp_path / "acl" / "users.acl").read_text()
    assert "{{" not in acl and "memup:*" not in acl and "memup:tmaze-lnr-1000:frag:*" in acl
    if redis_version(server) < (7, 2):  # CLIENT SETINFO is a 7.2 command
        acl = acl.replace(" +client|setinfo", "")
        (tmp_path / "acl" / "users.acl").write_text(acl)
    # redis-server refuses to start on a rule it cannot parse (e.g. a broken selector).
    redis_proc = subprocess.Popen(
        [server, "--port", str(free_port()), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--aclfile", str(tmp_path / "acl" / "users.acl")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        redis_proc.wait(timeout=1.5)
        pytest.fail(f"redis-server refused the rendered ACL file:\n{redis_proc.stdout.read()}")
    except subprocess.TimeoutExpired:
        pass  # still running: loaded
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=20)
    for i, bad in enumerate(("a:b", "a*", "", "-x", "a b")):
        (tmp_path / f"bad{i}").mkdir()
        proc = _render_k8s_acl(tmp_path / f"bad{i}", bad)
        assert proc.returncode != 0 and "run-name" in proc.stderr, bad
        assert not (tmp_path / f"bad{i}" / "acl" / "users.acl").exists(), bad


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


def test_both_variants_render_with_curve_and_refuse_to_without_keys(tmp_path: Path) -> None:
    """``kubectl kustomize`` of deploy/k8s and deploy/k8s/gpu (a copy, with fresh keys and
    passwords): scorers and learner get MEMUP_ZMQ_CURVE_KEYS and Secret memup-curve; with no
    keys the build stops and names the missing file. Skipped without kubectl."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it renders kustomizations offline)")
    from common.curve import create_keys

    tree = tmp_path / "k8s"
    shutil.copytree(CURVE.parent, tree, ignore=shutil.ignore_patterns("keys", "*.env"))
    (tree / "base" / "redis-credentials.env").write_text("".join(
        f"{k}-password={'a1' * 16}\n" for k in ("actor", "scorer", "learner", "healthcheck")))
    proc = subprocess.run([kubectl, "kustomize", str(tree)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "curve/keys/server.key_secret" in proc.stderr
    create_keys(tree / "curve" / "keys")
    for variant in (tree, tree / "gpu"):
        proc = subprocess.run([kubectl, "kustomize", str(variant)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        assert [d for d in docs if d["kind"] == "Secret"
                and d["metadata"]["name"] == "memup-curve"]
        for d in docs:
            if d["kind"] == "Deployment" and d["metadata"]["name"] in ("scorer", "learner"):
                (c,) = d["spec"]["template"]["spec"]["containers"]
                env = {v["name"]: v.get("value") for v in c["env"]}
                assert env["MEMUP_ZMQ_CURVE_KEYS"] == "/etc/memup-curve", variant
