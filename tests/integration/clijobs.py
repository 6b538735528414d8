"""The ``memup`` commands of the CLI tests, run as real subprocesses in the background."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs one ``memup`` command to completion."""
    return subprocess.run([*MEMUP, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL, env=ENV)


class Job:
    """One ``memup`` command running in the background; :meth:`result` waits for it."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.args = args
        self.proc = subprocess.Popen([*MEMUP, *args], cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL, env=ENV)
        self._done: subprocess.CompletedProcess | None = None

    def result(self) -> subprocess.CompletedProcess:
        if self._done is None:
            out, err = self.proc.communicate(timeout=TIMEOUT)
            self._done = subprocess.CompletedProcess(self.args, self.proc.returncode, out, err)
        return self._done

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


class JobSet:
    """Every independent command of the CLI tests, started at once in a scratch directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="memup-cli-"))
        (self.root / "config.toml").write_text(CONFIG_TOML)
        (self.root / "bad.toml").write_text(BAD_CONFIG_TOML)
        r = self.root
        commands = {
            "bench": BENCH,
            "tmaze": [*TMAZE, "--run-dir", str(r / "tmaze")],
            "copy": [*COPY, "--run-dir", str(r / "copy")],
            "config": ["train", "tmaze-memory", "--config", str(r / "config.toml"),
                       "--lanes", "4", "--run-dir", str(r / "config")],
            "unknown": ["train", "tmaze-memory", "--config", str(r / "bad.toml"),
                        "--run-dir", str(r / "bad")],
            **{f"help-{name}": args for name, args in HELP.items()},
        }
        self.jobs = {name: Job(args, r) for name, args in commands.items()}

    def result(self, name: str) -> subprocess.CompletedProcess:
        return self.jobs[name].result()

    def close(self) -> None:
        """Stops what still runs (only these jobs' own processes) and removes the files."""
        for job in self.jobs.values():
            job.stop()
        shutil.rmtree(self.root, ignore_errors=True)
