"""The live status view of ``memup up``: one refreshed block on a terminal, lines in a log.

Reading Redis may fail (the embedded server is being restarted, an external one is down):
the view then shows "Redis unreachable, retrying" in place of the numbers and goes on;
it never ends the run.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

import redis

from common import keys
from common.redis_io import stream_stats
from common.status import read_statuses


class StatusView:
    """Reads every replica's status from Redis and shows the cluster's progress.

    On a terminal the block is redrawn in place every ``interval_s``; otherwise (CI, a
    log file) one line is printed every ``log_interval_s``.
    """

    def __init__(self, r: redis.Redis, run: str, out: TextIO = sys.stdout,
                 interval_s: float = 2.0, log_interval_s: float = 15.0) -> None:
        self.r, self.run, self.out = r, run, out
        self.tty = out.isatty()
        self.interval = interval_s if self.tty else log_interval_s
        self.started = time.monotonic()
        self.next_draw = 0.0
        self.last: tuple[float, float] | None = None  # (time, env steps) of the last draw
        self.drawn_lines = 0
        # The learner's status key expires a few seconds after it stops (e.g. when the
        # run finishes): the last one seen stays on screen instead of zeros.
        self.learner: dict[str, float] = {}
        self.last_snapshot: dict[str, float] = {}

    def note_learner(self) -> None:
        """Reads the learner's status alone (one GET), so the view keeps its final numbers
        even when they lived shorter than a drawing interval."""
        try:
            raw = self.r.get(keys.status_key(self.run, "learner-0"))
            if raw is not None:
                self.learner = json.loads(raw)
        except (redis.RedisError, ValueError):
            pass  # the next draw says whether Redis is unreachable

    def snapshot(self) -> dict[str, float]:
        """The numbers the view shows (also returned to callers, e.g. for the summary)."""
        statuses = read_statuses(self.r, self.run)
        actors = [s for n, s in statuses.items() if n.startswith("actor-")]
        learner = self.learner = statuses.get("learner-0") or self.learner
        stream = keys.episodes_stream(self.run)
        scoring = stream_stats(self.r, stream, keys.SCORERS_GROUP)
        ppo = stream_stats(self.r, stream, keys.PPO_GROUP)
        now = time.monotonic()
        steps = float(self.r.get(keys.env_steps_key(self.run)) or 0)
        rate = 0.0
        if self.last is not None and now > self.last[0]:
            rate = max(0.0, steps - self.last[1]) / (now - self.last[0])
        self.last = (now, steps)
        return {
            "elapsed_s": now - self.started, "actors": len(actors),
            "scorers": sum(1 for n in statuses if n.startswith("scorer-")),
            "env_steps": steps, "steps_per_s": rate,
            "episodes": sum(a.get("episodes", 0.0) for a in actors),
            "phase": learner.get("phase", 0.0),
            "memup_updates": learner.get("memup_updates", 0.0),
            "ppo_updates": learner.get("ppo_updates", 0.0),
            "memory_accuracy": learner.get("memory_accuracy", 0.0),
            "success": learner.get("success", 0.0), "loss": learner.get("loss", 0.0),
            "policy_lag": learner.get("lag", 0.0),
            "stream": scoring["length"], "unscored": scoring["pending"],
            "ppo_pending": ppo["pending"],
        }

    def draw(self, force: bool = False) -> dict[str, float] | None:
        """Shows the status if it is time to (or ``force``); returns what it showed (the
        last numbers read when Redis could not be read)."""
        now = time.monotonic()
        if not force and now < self.next_draw:
            return None
        self.next_draw = now + self.interval
        try:
            s = self.last_snapshot = self.snapshot()
        except redis.RedisError as exc:
            minutes, seconds = divmod(int(now - self.started), 60)
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            self._show([f"memup up  {minutes:02d}:{seconds:02d}  Redis unreachable, retrying "
                        f"({reason})"])
            return {**self.last_snapshot, "elapsed_s": now - self.started}
        minutes, seconds = divmod(int(s["elapsed_s"]), 60)
        phase = {1: "I (memory)", 2: "II (policy)"}.get(int(s["phase"]), "starting")
        lines = [
            f"memup up  {minutes:02d}:{seconds:02d}  phase {phase}  "
            f"actors {s['actors']:.0f}  scorers {s['scorers']:.0f}",
            f"  env steps {s['env_steps']:,.0f} ({s['steps_per_s']:,.0f}/s)  "
            f"episodes {s['episodes']:,.0f}",
            f"  memory: updates {s['memup_updates']:,.0f}  loss {s['loss']:.4f}  "
            f"accuracy {s['memory_accuracy']:.3f}",
            f"  policy: updates {s['ppo_updates']:,.0f}  success {s['success']:.3f}  "
            f"lag {s['policy_lag']:.0f}",
            f"  queues: episodes stream {s['stream']:,.0f}  scorer pending {s['unscored']:.0f}"
            f"  ppo pending {s['ppo_pending']:.0f}",
        ]
        self._show(lines)
        return s

    def _show(self, lines: list[str]) -> None:
        if self.tty:
            if self.drawn_lines:
                self.out.write(f"\x1b[{self.drawn_lines}F\x1b[J")  # back up and clear
            self.out.write("\n".join(lines) + "\n")
            self.drawn_lines = len(lines)
        else:
            self.out.write(" |".join(line.strip() for line in lines) + "\n")
        self.out.flush()
