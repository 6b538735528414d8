"""The ``memup`` commands of the CLI tests, run as real subprocesses in the background."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

MEMUP = [shutil.which("memup")] if shutil.which("memup") else [sys.executable, "-m", "cli.main"]
TIMEOUT = 600  # a safety net against hangs, far above the seconds each command takes
# One thread per child: the commands run side by side on few cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

TMAZE = ["train", "tmaze-memory", "--length", "20", "--rollout", "5", "--lanes", "4",
         "--max-updates", "6", "--eval-every", "3", "--eval-episodes", "8", "--threads", "1"]
# --frequency (memory-phase prediction frequency, default 10) must not exceed --rollout 5.
COPY = ["train", "copy", "--length", "30", "--rollout", "5", "--lanes", "4", "--warmup", "2",
        "--memory-updates", "2", "--predictor-updates", "2", "--max-updates", "8",
        "--eval-every", "4", "--eval-episodes", "8", "--train-size", "50", "--frequency", "5",
        "--threads", "1"]
BENCH = ["bench", "memory", "--lengths", "200,2000", "--updates", "1", "--json",
         "--threads", "1"]
HELP = {
    "root": ["--help"],
    "train": ["train", "--help"],
    "tmaze": ["train", "tmaze-memory", "--help"],
    "bench": ["bench", "memory", "--help"],
}
CONFIG_TOML = """\
length = 20
rollout = 5
lanes = 3
mode = "LN"
max_updates = 2
eval_every = 2
eval_episodes = 4
threads = 1
"""
BAD_CONFIG_TOML = "lenght = 20\nrollout = 5\n"
ROOT = Path(__file__).resolve().parents[2]
UP_20 = ["up", "--config", str(ROOT / "configs" / "up_tmaze_lnr_20.toml")]
DEAD_REDIS = "redis://:x@127.0.0.1:1/0"  # port 1: nothing listens there
# Bad inputs: each must end with one line on stderr, exit 2 (4: no Redis), no traceback.
# The run directory they name must not be created.
BAD_INPUTS = {
    "length-negative": ["train", "tmaze-memory", "--length", "-5"],
    "length-zero": ["train", "tmaze-memory", "--length", "0"],
    "copy-lanes-zero": ["train", "copy", "--lanes", "0"],
    "rollout-zero": ["train", "tmaze-memory", "--rollout", "0"],
    "file-length-negative": ["train", "tmaze-memory", "--config", "negative.toml"],
    "up-device": [*UP_20, "--set", "run.device=tpu"],
    "up-maxmemory": [*UP_20, "--set", "redis.embedded_maxmemory=lots"],
    "up-dead-redis": UP_20,
    "eval-record-tmaze": ["eval", "tmaze-run", "--record", "out.gif"],
}


class JobSet:
    """Every command of the CLI tests, run by a few worker threads in a scratch directory.

    Independent commands are queued at once; the T-Maze run, its refused rerun and its
    resume form one chain (each needs the previous one's files). Each result is a
    :class:`subprocess.CompletedProcess` (the chain's a dict of them).
    """

    WORKERS = 3  # commands at a time: overlaps start-ups without crowding two cores

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="memup-cli-"))
        (self.root / "config.toml").write_text(CONFIG_TOML)
        (self.root / "bad.toml").write_text(BAD_CONFIG_TOML)
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="memup-cli")
        r = self.root
        # The longest chains first: the benchmark runs four cases one after another.
        self._futures: dict[str, Future] = {
            "bench": self._pool.submit(self.run, BENCH),
            "tmaze": self._pool.submit(self._tmaze_chain),
        }
        commands = {
            "copy": [*COPY, "--run-dir", str(r / "copy")],
            "config": ["train", "tmaze-memory", "--config", str(r / "config.toml"),
                       "--lanes", "4", "--run-dir", str(r / "config")],
            "unknown": ["train", "tmaze-memory", "--config", str(r / "bad.toml"),
                        "--run-dir", str(r / "bad")],
            **{f"help-{name}": args for name, args in HELP.items()},
        }
        for name, args in commands.items():
            self._futures[name] = self._pool.submit(self.run, args)
        self._fabricate_tmaze_run(r / "tmaze-run")
        (r / "negative.toml").write_text("length = -5\n")
        for name, args in BAD_INPUTS.items():
            run_dir = ["--run-dir", str(r / f"bad-{name}")] if args[0] == "train" else []
            if args[0] == "up":
                run_dir = ["--set", f"run.dir={r / f'bad-{name}'}"]
            env = {**ENV, "REDIS_URL": DEAD_REDIS} if name == "up-dead-redis" else None
            self._futures[f"bad-{name}"] = self._pool.submit(self.run, [*args, *run_dir], env)

    @staticmethod
    def _fabricate_tmaze_run(run_dir: Path) -> None:
        """A T-Maze run directory as ``memup eval`` reads it, with no weights at all: a
        command that got as far as evaluating it would crash."""
        import json

        from common.checkpoint import save_checkpoint
        from common.config import ClusterConfig

        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps(ClusterConfig().redacted()))
        save_checkpoint(run_dir / "checkpoints" / "learner.pt", {"versions": {"policy": 3}})

    def run(self, args: list[str], env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        """Runs one ``memup`` command to completion (killed by :meth:`close`)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the CLI test jobs were closed")
            proc = subprocess.Popen([*MEMUP, *args], cwd=self.root, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True,
                                    stdin=subprocess.DEVNULL, env=env or ENV)
            self._procs.add(proc)
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        finally:
            with self._lock:
                self._procs.discard(proc)
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def _tmaze_chain(self) -> dict:
        """The T-Maze run; then, on a copy of it, a rerun without --resume and a resume."""
        first = self.run([*TMAZE, "--run-dir", str(self.root / "tmaze")])
        chain: dict = {"first": first}
        if first.returncode != 0:
            return chain
        resume_dir = self.root / "resume"
        shutil.copytree(self.root / "tmaze", resume_dir)
        chain["again"] = self.run([*TMAZE, "--run-dir", str(resume_dir)])
        chain["metrics_after_refusal"] = (resume_dir / "metrics.jsonl").read_text()
        chain["resumed"] = self.run([*TMAZE, "--run-dir", str(resume_dir), "--resume",
                                     "--max-updates", "9"])
        return chain

    def result(self, name: str):
        """Waits for the named command (or chain) and returns its result."""
        return self._futures[name].result(timeout=4 * TIMEOUT)

    def close(self) -> None:
        """Stops what still runs (only these jobs' own processes) and removes the files."""
        with self._lock:
            self._closed = True
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)
