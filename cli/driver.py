"""The training driver: progress bar, periodic evaluation, metrics log, checkpoints, resume."""

from __future__ import annotations

import resource
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from common.checkpoint import load_checkpoint, save_checkpoint
from common.runlog import RunLog


class Trainable(Protocol):
    """What the driver needs of a training protocol."""

    updates: int

    def step(self) -> dict[str, float]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class StopRule:
    """When a run ends.

    Attributes:
        max_updates: hard cap on updates.
        max_minutes: wall-clock cap (training time, summed over resumes); 0 = none.
        target: evaluation ``metric`` that counts as solved; None = never stop early.
        confirm: consecutive evaluations reaching ``target`` needed to stop.
        metric: the evaluation key compared with ``target`` (and plotted).
        minimise: the metric is solved at or below ``target`` (an MSE), not at or above.
    """

    max_updates: int
    max_minutes: float = 0.0
    target: float | None = None
    confirm: int = 1
    metric: str = "accuracy"
    minimise: bool = False

    def reached(self, evaluation: dict[str, float]) -> bool:
        """Whether one evaluation reaches the target."""
        if self.target is None:
            return False
        value = evaluation[self.metric]
        return value <= self.target if self.minimise else value >= self.target


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextmanager
def stop_requests() -> Iterator[list[int]]:
    """Within it, a first SIGINT or SIGTERM is recorded (the list gets the signal) instead of
    raising, so the loop can save its state after the update in progress; a second one
    raises KeyboardInterrupt. The old handlers return after it."""
    received: list[int] = []

    def record(number: int, _frame: object) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(number)
        print(f"\nsignal {number}: saving the run after this update (again to abort "
              "without saving)", file=sys.stderr)

    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, record) for sig in wanted}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def drive(training: Trainable, evaluate: Callable[[], dict[str, float]], log: RunLog,
          stop: StopRule, eval_every: int, resume: bool, title: str,
          fixed: dict[str, Any], added: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runs ``training`` until ``stop``; evaluates, logs and checkpoints every ``eval_every``
    and once more when the time limit passes between two evaluations. Ctrl-C or SIGTERM
    saves the checkpoint at the update in progress, without evaluating, and returns: the
    run resumes from there as if it had not stopped.

    Args:
        fixed: settings stored in the checkpoint that a resumed run must repeat.
        added: fixed settings introduced after some checkpoints were written, with the
            value those checkpoints ran with (so they still resume).

    Returns:
        The last evaluation record (with ``solved``, ``updates``, ``wall_seconds``).
    """
    ckpt = log.dir / "checkpoint.pt"
    elapsed, streak = 0.0, 0
    if resume:
        state = load_checkpoint(ckpt)
        saved = {**(added or {}), **state["fixed"]}
        changed = {k: (saved.get(k), v) for k, v in fixed.items() if saved.get(k) != v}
        if changed:
            raise SystemExit("--resume: these settings differ from the checkpoint's "
                             "(checkpoint, now): " + ", ".join(
                                 f"--{k.replace('_', '-')} {a!r} vs {b!r}"
                                 for k, (a, b) in changed.items()))
        training.load_state_dict(state["training"])
        elapsed, streak = float(state["elapsed"]), int(state["streak"])
        print(f"resumed {ckpt} at update {training.updates} ({elapsed / 60:.1f} min trained)",
              file=sys.stderr)
    start = time.monotonic() - elapsed
    sums: dict[str, float] = {}
    count = 0
    previous = [r for r in log.records() if "updates" in r]
    record: dict[str, Any] = previous[-1] if previous else {"updates": training.updates}

    def progress(wall: float) -> dict[str, Any]:
        """Where the run stands: updates, time, memory and the training averages since the
        last record."""
        return {"updates": training.updates, "wall_seconds": round(wall, 2),
                "peak_rss_bytes": peak_rss_bytes(),
                **{f"train_{k}": v / max(count, 1) for k, v in sums.items()}}

    def save(wall: float) -> None:
        save_checkpoint(ckpt, {"training": training.state_dict(), "elapsed": wall,
                               "streak": streak, "fixed": fixed})

    bar = tqdm(total=stop.max_updates, initial=training.updates, desc=title, unit="upd",
               dynamic_ncols=True, mininterval=1.0, file=sys.stderr)
    with stop_requests() as interrupted:
        while training.updates < stop.max_updates:
            stats = training.step()
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            bar.update(1)
            wall = time.monotonic() - start
            if interrupted:  # the training averages so far are logged, not evaluated
                record = {**progress(wall), "stopped_by_signal": interrupted[0]}
                log.log(record)
                save(wall)
                bar.close()
                print(f"stopped by signal {interrupted[0]} at update {training.updates}: "
                      f"checkpoint saved in {ckpt}", file=sys.stderr)
                break
            out_of_time = bool(stop.max_minutes) and wall >= stop.max_minutes * 60
            if (training.updates % eval_every and training.updates < stop.max_updates
                    and not out_of_time):
                continue
            evaluation = evaluate()
            streak = streak + 1 if stop.reached(evaluation) else 0
            record = {**progress(wall), **{f"eval_{k}": v for k, v in evaluation.items()}}
            log.log(record)
            sums, count = {}, 0
            bar.set_postfix(loss=f"{record.get('train_loss', 0):.3g}",
                            **{f"eval_{stop.metric}": f"{evaluation[stop.metric]:.4g}"})
            save(wall)
            if (stop.target is not None and streak >= stop.confirm) or out_of_time:
                break
    bar.close()
    record["solved"] = stop.target is not None and streak >= stop.confirm
    write_curves(log, title, stop.metric)
    return record


def write_curves(log: RunLog, title: str, metric: str = "accuracy") -> list[Path]:
    """The evaluation ``metric`` against updates and against wall minutes, as PNGs beside
    the log (``accuracy.png`` / ``accuracy_wall.png`` for accuracy, else named after it)."""
    from common.curves import plot_curves  # matplotlib (~30 MB) loads only at the end

    records = log.records()
    if not any(f"eval_{metric}" in r for r in records):  # stopped before its first evaluation
        return []
    for r in records:
        r["wall_minutes"] = r.get("wall_seconds", 0) / 60
    return [
        plot_curves({title: records}, "updates", f"eval_{metric}", log.dir / f"{metric}.png",
                    title),
        plot_curves({title: records}, "wall_minutes", f"eval_{metric}",
                    log.dir / f"{metric}_wall.png", title),
    ]
