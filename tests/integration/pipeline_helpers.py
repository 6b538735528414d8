"""Helpers of the pipeline integration tests: synthetic episodes as an actor publishes them,
scorer subprocesses, polling with deadlines, and Prometheus metrics read over HTTP.

Everything here talks to a real Redis (the session's :class:`EmbeddedRedis`) and starts
real processes; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import msgpack
import numpy as np
import redis
from prometheus_client.parser import text_string_to_metric_families

from actor.publish import FragmentPublisher
from common import keys
from common.config import ClusterConfig, load_config
from common.embedded_redis import free_port
from common.metrics import ActorMetrics
from common.wire import EpisodeDone, Fragment
from tasks.tmaze.env import TMazeEnv

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


# ------------------------------------------------------------------ waiting


def wait_for(condition: Callable[[], T], timeout: float, what: str,
             interval: float = 0.02, alive: Callable[[], str | None] | None = None) -> T:
    """Polls ``condition()`` until it returns something truthy (returned) or ``timeout`` passes.

    Args:
        alive: called on every poll; a non-None string means a process the test depends on
            died, and the wait fails at once with that text instead of timing out.

    Raises:
        AssertionError: the deadline passed (the message says what was awaited).
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = condition()
        if last:
            return last
        if alive is not None and (dead := alive()) is not None:
            raise AssertionError(f"while waiting for {what}: {dead}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} "
                                 f"(last value {last!r})")
        time.sleep(interval)


# ------------------------------------------------------------------ config


def make_config(run: str, redis_url: str, *overrides: str) -> ClusterConfig:
    """The config every helper and in-process role of a test uses: a small T-Maze task."""
    return load_config(None, [f"run.name={run}", f"redis.url={redis_url}", "task.length=20",
                              "memup.hidden=32", *overrides], environ={})


# ------------------------------------------------------------------ synthetic episodes


def play_episodes(config: ClusterConfig, n: int, seed: int, prefix: str = "ep",
                  actor: str = "actor-0") -> list[tuple[list[Fragment], EpisodeDone]]:
    """``n`` T-Maze episodes played with random actions, cut into fragments like the actor
    loop does (``config.actor.fragment_steps`` steps each, the last one ``final``)."""
    rng = np.random.default_rng(seed)
    env = TMazeEnv(config.task.mode, config.task.length)
    per = config.actor.fragment_steps
    out = []
    for e in range(n):
        obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
        rows: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "log_prob", "value")}
        done = False
        while not done:
            action = int(rng.integers(2))
            rows["obs"].append(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            rows["action"].append(action)
            rows["reward"].append(reward)
            rows["log_prob"].append(np.log(0.5))
            rows["value"].append(0.0)
            done = terminated or truncated
        episode = f"{prefix}-{e}"
        steps = len(rows["action"])
        arrays = {"obs": np.asarray(rows["obs"], dtype=np.float32),
                  "action": np.asarray(rows["action"], dtype=np.int64),
                  "reward": np.asarray(rows["reward"], dtype=np.float32),
                  "log_prob": np.asarray(rows["log_prob"], dtype=np.float32),
                  "value": np.asarray(rows["value"], dtype=np.float32)}
        starts = list(range(0, steps, per))
        fragments = [Fragment(run=config.run.name, actor=actor, episode=episode, index=i,
                              first_step=s, arrays={k: v[s:s + per] for k, v in arrays.items()},
                              policy_version=0, final=i == len(starts) - 1)
                     for i, s in enumerate(starts)]
        out.append((fragments, EpisodeDone(episode=episode, actor=actor, length=steps,
                                           return_=float(arrays["reward"].sum()),
                                           policy_version=0, fragments=len(fragments))))
    return out


def publish(r: redis.Redis, config: ClusterConfig,
            episodes: Iterable[tuple[list[Fragment], EpisodeDone]],
            timeout: float = 20.0) -> list[str]:
    """Publishes episodes through the actor's own :class:`FragmentPublisher` (RPUSH of each
    fragment with its TTL and, in the same MULTI, XADD of the done entry) and waits until
    every fragment is written. Returns the episode ids in publish order."""
    episodes = list(episodes)
    total = sum(len(f) for f, _ in episodes)
    if total > config.actor.queue_fragments:
        raise ValueError("more fragments than the publisher queue holds: they would be dropped")
    publisher = FragmentPublisher(r, config, ActorMetrics(env="tmaze"))
    publisher.start()
    try:
        for fragments, done in episodes:
            for fragment in fragments:
                publisher.put(fragment, done if fragment.final else None)
        wait_for(lambda: publisher.published >= total, timeout, f"{total} fragments published")
    finally:
        publisher.close()
    assert publisher.published == total
    return [done.episode for _, done in episodes]


# ------------------------------------------------------------------ Redis views of a run


def marked(r: redis.Redis, run: str) -> set[str]:
    """Episode ids that have a mark key."""
    pattern = keys.mark_key(run, "x")[:-1] + "*"
    start = len(pattern) - 1
    return {k.decode()[start:] for k in r.scan_iter(match=pattern, count=1000)}


def count_keys(r: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in r.scan_iter(match=pattern, count=1000))


def group_pending(r: redis.Redis, run: str, group: str = keys.SCORERS_GROUP) -> int:
    try:
        return int(r.xpending(keys.episodes_stream(run), group)["pending"])
    except redis.ResponseError:
        return 0


def consumer_pending(r: redis.Redis, run: str, consumer: str,
                     group: str = keys.SCORERS_GROUP) -> int:
    """Entries pending for one consumer of ``group`` (0 when it or the group is unknown)."""
    try:
        infos = r.xinfo_consumers(keys.episodes_stream(run), group)
    except redis.ResponseError:
        return 0
    for info in infos:
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        if name == consumer:
            return int(info["pending"])
    return 0


def dead_letters(r: redis.Redis, run: str) -> list[dict[str, bytes]]:
    """Fields of every dead-letter entry of ``run``, oldest first."""
    return [{k.decode(): v for k, v in fields.items()}
            for _, fields in r.xrange(keys.dead_letter_stream(run))]


# ------------------------------------------------------------------ metrics over HTTP


def scrape(port: int, timeout: float = 2.0) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``http://127.0.0.1:port/metrics`` by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict, name: str, **labels: str) -> float:
    """One sample of a :func:`scrape` result (0.0 when absent, as a counter never touched)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# ------------------------------------------------------------------ scorer subprocesses


class ScorerProcess:
    """``python -m cli.main scorer --replica R --set ...`` as a child process.

    Its log goes to a temporary file (a pipe nobody reads could fill and block it); its
    metrics are served on a port picked here, so the test can scrape them.
    """

    def __init__(self, redis_url: str, run: str, replica: int, overrides: Sequence[str] = ()
                 ) -> None:
        self.run_id, self.replica = run, replica
        self.redis_url = redis_url
        self.metrics_port = free_port()
        self.overrides = [f"run.name={run}", "task.length=20", "memup.hidden=32",
                          f"scorer.metrics_port={self.metrics_port}", *overrides]
        self.log = tempfile.NamedTemporaryFile(prefix=f"scorer-{run}-{replica}-",
                                               suffix=".log", delete=False)
        argv = [sys.executable, "-m", "cli.main", "scorer", "--replica", str(replica)]
        for item in self.overrides:
            argv += ["--set", item]
        env = {**os.environ, "REDIS_URL": redis_url, "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def consumer(self) -> str:
        return keys.consumer_name("scorer", self.replica)

    def log_tail(self, lines: int = 40) -> str:
        text = Path(self.log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def dead(self) -> str | None:
        """None while the process runs, else its exit code and log tail."""
        code = self.proc.poll()
        if code is None:
            return None
        return f"scorer {self.consumer} exited with {code}; log:\n{self.log_tail()}"

    def wait_ready(self, r: redis.Redis, timeout: float = 60.0) -> None:
        """Until its segment server registered its endpoint and its metrics answer (both
        loops are then running: the scoring loop is built before the server starts)."""
        key = keys.scorer_endpoint_key(self.run_id, self.replica)
        wait_for(lambda: r.exists(key), timeout, f"{self.consumer} endpoint", interval=0.05,
                 alive=self.dead)
        wait_for(self._metrics_answer, 10.0, f"{self.consumer} metrics", alive=self.dead)

    def _metrics_answer(self) -> bool:
        try:
            self.scrape()
        except OSError:
            return False
        return True

    def scrape(self) -> dict:
        return scrape(self.metrics_port)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL (no cleanup in the child: its pending entries stay pending)."""
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (a graceful stop), SIGKILL after ``timeout``; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        Path(self.log.name).unlink(missing_ok=True)


def start_scorers(redis_url: str, run: str, replicas: dict[int, Sequence[str]]
                  ) -> dict[int, ScorerProcess]:
    """Starts several scorer processes at once (their seconds of start-up overlap)."""
    return {replica: ScorerProcess(redis_url, run, replica, overrides)
            for replica, overrides in replicas.items()}


class Stoppable(threading.Thread):
    """A daemon thread running ``body(stop)``; re-raises its exception on :meth:`finish`."""

    def __init__(self, body: Callable[[threading.Event], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.body = body
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.body(self.stop_event)
        except BaseException as exc:  # handed to the test thread by finish()
            self.error = exc

    def finish(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.join(timeout)
        if self.error is not None:
            raise self.error


# ------------------------------------------------------------------ frames


def tamper(frame: bytes, **changes: object) -> bytes:
    """``frame`` re-packed with top-level entries changed (``v=2``, ``k="bogus"``, ...)."""
    body = msgpack.unpackb(frame)
    body.update(changes)
    return msgpack.packb(body, use_bin_type=True)


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Runs in-process roles with ``n`` torch threads, as ``memup scorer`` does
    (``run.threads``); on a small machine more threads mostly wait on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
