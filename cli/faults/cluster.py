"""One ``memup up`` run under test: started with the ledger on, watched, and summed up.

A sampler thread reads Redis ``used_memory`` and the pending entries of the episodes
stream's groups, and the RSS of every role process, once a second, and keeps the peaks.
Restarts are read from ``memup up``'s own log lines (``<child> exited with code …;
restarting``) and, for Redis, from the ``redis-server`` pids the sampler saw.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import redis

from cli.faults import inject
from common import keys
from common.ledger import ENV as LEDGER_ENV
from common.ledger import read_events

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "up_tmaze_lnr_20.toml"
MB = 1e6
_RESTART = re.compile(r"(\S+) exited with code (\S+); restarting")


class Cluster:
    """A local cluster started by ``memup up`` in ``base`` (``run.dir``), run ``name``.

    Args:
        base: the ``run.dir``; the run itself lives in ``base/name``, the ledger in
            ``base/ledger``, ``memup up``'s output in ``base/up.log``.
        name: the run name.
        overrides: extra ``--set`` values.
        max_minutes: ``memup up --max-minutes`` (a safety cap: a run should end on its
            budget well before it).
    """

    def __init__(self, base: Path, name: str, overrides: list[str], max_minutes: float) -> None:
        self.base = Path(base)
        self.name = name
        self.run_path = self.base / name
        self.ledger = self.base / "ledger"
        self.overrides = [f"run.dir={self.base}", f"run.name={name}", *overrides]
        self.max_minutes = max_minutes
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.faults: list[tuple[float, str]] = []  #: (wall time, what) of each injection
        self.started = 0.0
        self.peak_redis = 0
        self.peak_pending: Counter[str] = Counter()
        self.peak_rss: Counter[str] = Counter()
        self.redis_pids: list[int] = []
        self._url = ""
        self._r: redis.Redis | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._frozen: set[int] = set()

    # -- running --------------------------------------------------------------------------

    def start(self) -> Cluster:
        """Starts ``memup up`` with ``MEMUP_LEDGER`` set, and the reader and sampler threads."""
        self.base.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "cli.main", "up", "--config", str(CONFIG),
                "--max-minutes", str(self.max_minutes)]
        for item in self.overrides:
            argv += ["--set", item]
        env = {**os.environ, LEDGER_ENV: str(self.ledger), "PYTHONUNBUFFERED": "1"}
        env.pop("REDIS_URL", None)  # always the embedded Redis: the faults kill and wipe it
        self.started = time.time()
        with (self.base / "up.out").open("w") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.PIPE, text=True)
        for target in (self._read, self._sample):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with (self.base / "up.log").open("w") as log:
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                log.write(line)
                log.flush()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        """One sample of Redis memory, group backlogs and every role's RSS (peaks kept)."""
        for proc in inject.role_processes(self.base):
            try:
                name = inject.role_name(proc)
                self.peak_rss[name] = max(self.peak_rss[name], proc.memory_info().rss)
            except psutil.Error:
                continue
        if self.proc is not None and self.proc.poll() is None:
            try:
                rss = psutil.Process(self.proc.pid).memory_info().rss
                self.peak_rss["up"] = max(self.peak_rss["up"], rss)
            except psutil.Error:
                pass
        if not self._url:
            try:
                self.url(timeout_s=0.0)
            except TimeoutError:
                return  # no role started yet
        pid = inject.redis_server_pid(self._url)
        if pid is not None and pid not in self.redis_pids:
            self.redis_pids.append(pid)
        try:
            r = self.redis()
            self.peak_redis = max(self.peak_redis, int(r.info("memory")["used_memory"]))
            for group in r.xinfo_groups(keys.episodes_stream(self.name)):
                name = group["name"].decode()
                waiting = int(group.get("pending") or 0) + int(group.get("lag") or 0)
                self.peak_pending[name] = max(self.peak_pending[name], waiting)
        except (redis.RedisError, OSError):
            pass  # Redis down or the stream gone: that is what some faults do

    def redis(self) -> redis.Redis:
        """A client of the run's Redis (the URL read from a role process's environment)."""
        if self._r is None:
            self._r = inject.client(self.url())
        return self._r

    def url(self, timeout_s: float = 120.0) -> str:
        """The run's ``REDIS_URL``, as ``memup up`` gave it to its roles."""
        deadline = time.monotonic() + timeout_s
        while not self._url:
            for proc in inject.role_processes(self.base):
                try:
                    self._url = inject.redis_url_of(proc.pid)
                    break
                except (psutil.Error, RuntimeError):
                    continue
            if not self._url:
                if time.monotonic() >= deadline or not self.alive():
                    raise TimeoutError("no role process with a REDIS_URL")
                time.sleep(0.2)
        return self._url

    def alive(self) -> bool:
        """Whether ``memup up`` still runs."""
        return self.proc is not None and self.proc.poll() is None

    def note(self, what: str, recover_from: bool = True) -> float:
        """Logs a fault and returns its time; with ``recover_from``, recovery is measured
        from it (a freeze's start is only logged: recovery counts from the thaw)."""
        at = time.time()
        if recover_from:
            self.faults.append((at, what))
        print(f"  [{at - self.started:6.1f}s] {what}", file=sys.stderr, flush=True)
        return at

    def pid(self, role: str, replica: int | None = None) -> int:
        """The pid of the one live process of ``role``."""
        return inject.one_pid(self.base, role, replica)

    def freeze(self, pid: int) -> None:
        """SIGSTOP, remembered so that :meth:`finish` always thaws it."""
        self._frozen.add(pid)
        inject.freeze(pid)

    def thaw(self, pid: int) -> None:
        inject.thaw(pid)
        self._frozen.discard(pid)

    # -- waiting --------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> bool:
        """Polls ``predicate`` until it holds, ``memup up`` ends, or the timeout (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.alive():
            try:
                if predicate():
                    return True
            except (redis.RedisError, OSError, ValueError):
                pass
            time.sleep(0.25)
        print(f"  gave up waiting for {what} after {timeout_s:.0f}s", file=sys.stderr, flush=True)
        return False

    def records(self) -> list[dict[str, Any]]:
        """The learner's metrics.jsonl records so far."""
        path = self.run_path / "metrics.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def phase(self) -> int:
        """The run's phase from the control hash (0: not set yet)."""
        return int(self.redis().hget(keys.control_key(self.name), keys.CONTROL_PHASE) or 0)

    def wait_phase(self, phase: int, records: int = 1, timeout_s: float = 150.0) -> bool:
        """Waits until the learner logged ``records`` records of ``phase`` (it trains)."""
        return self.wait(lambda: sum(r.get("phase") == phase for r in self.records()) >= records,
                         timeout_s, f"{records} phase-{phase} records")

    def learner_events_after(self, t: float) -> int:
        """Ledger ``trained`` / ``sampled`` events after wall time ``t``."""
        return sum(1 for e in read_events(self.ledger)
                   if e["e"] in ("trained", "sampled") and e["t"] > t)

    def wait_trained_after(self, t: float, timeout_s: float = 90.0, events: int = 1) -> bool:
        """Waits until the learner trained again after ``t`` (from the ledger)."""
        return self.wait(lambda: self.learner_events_after(t) >= events, timeout_s,
                         "the learner to train again")

    # -- ending ---------------------------------------------------------------------------

    def finish(self, timeout_s: float) -> dict[str, Any]:
        """Waits for ``memup up`` to end (SIGTERM, then SIGKILL past ``timeout_s``), stops
        every leftover process of the run, and returns what was seen."""
        assert self.proc is not None
        for pid in list(self._frozen):
            self.thaw(pid)
        try:
            code = self.proc.wait(max(1.0, self.started + timeout_s - time.time()))
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        leftovers = self.cleanup()
        restarts = Counter(m.group(1) for line in self.lines if (m := _RESTART.search(line)))
        if len(self.redis_pids) > 1:
            restarts["redis"] = len(self.redis_pids) - 1
        records = self.records()
        return {
            "exit_code": code,
            "ended": "finished" if any(" finished after " in x for x in self.lines) else "stopped",
            "last_phase": records[-1].get("phase", 0) if records else 0,
            "wall_s": round(time.time() - self.started, 1),
            "restarts": dict(restarts),
            "leftover_processes": leftovers,
            "peak_redis_mb": round(self.peak_redis / MB, 1),
            "peak_pending": dict(self.peak_pending),
            "peak_rss_mb": {k: round(v / MB, 1) for k, v in sorted(self.peak_rss.items())},
            "tail": self.lines[-5:],
        }

    def cleanup(self) -> int:
        """Stops what ``memup up`` left of this run (roles, its Redis); returns how many."""
        left = list(inject.role_processes(self.base))
        if self._url and (pid := inject.redis_server_pid(self._url)) is not None:
            left.append(psutil.Process(pid))
        for proc in left:
            try:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            except psutil.Error:
                pass
        if self._r is not None:
            self._r.close()
        return len(left)
