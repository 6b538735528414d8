"""One case of ``memup bench memory``, run in its own process so an OOM is a result, not a crash.

MemUP: one lane walks one T-Maze episode of length T with r = 20 and targets top-1 + current
step; the detector scores the episode first (streamed, no gradient). The episode is lazy
(generated block by block, memup/lazy.py) and its marks are streamed, as in
``memup train tmaze-memory --lazy``, so no part of the process grows with T. BPTT: the same LSTM and
predictor, the same targets at every step, but one update back-propagates through all T steps.

``saved_bytes`` counts the activations autograd stores for backward (the paper's
"intermediate data"); the parameter storages it also holds on to are the same for both
methods and are reported apart as ``saved_parameter_bytes``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np
import torch

from memup.detector import SurpriseDetector, TargetRule, mark_episodes, mark_streamed
from memup.losses import pointwise_loss
from memup.networks import TaskNets
from memup.sampler import LaneSampler
from memup.saved import count_saved_bytes
from memup.update import UpdateConfig, Updater
from tasks.tmaze.env import lazy_tmaze_episodes, random_tmaze_episodes
from tasks.tmaze.networks import tmaze_nets


def _memup(nets: TaskNets, length: int, rollout: int, updates: int) -> dict:
    rng = np.random.default_rng(0)
    episode = lazy_tmaze_episodes(1, length, "LNR", rng)[0]
    detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind, 0.995)
    rule = TargetRule(top_k=1, current=True)
    t0 = time.perf_counter()
    mark_streamed([episode], rule, detector)
    detector_seconds = time.perf_counter() - t0
    sampler = LaneSampler(lambda n: [episode], lambda eps: None, 1, rollout, 1)
    updater = Updater(nets, UpdateConfig(measure_saved=True), 1, detector)
    saved, params, times = [], [], []
    for _ in range(updates):
        batch = sampler.next_batch()
        t0 = time.perf_counter()
        stats = updater.step(batch)
        times.append(time.perf_counter() - t0)
        saved.append(int(stats["saved_bytes"]))
        params.append(int(stats["saved_parameter_bytes"]))
    return {"saved_bytes": max(saved), "saved_parameter_bytes": max(params),
            "seconds_per_update": statistics.median(times), "detector_seconds": detector_seconds}


def _bptt(nets: TaskNets, length: int, updates: int) -> dict:
    rng = np.random.default_rng(0)
    episode = random_tmaze_episodes(1, length, "LNR", rng)[0]
    detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind, 0.995)
    mark_episodes([episode], TargetRule(top_k=1, current=True), rng, detector)
    targets = torch.from_numpy(episode.extras["targets"])  # [T, 2]
    steps = torch.arange(len(episode)).repeat_interleave(targets.shape[1])
    flat = targets.reshape(-1)
    inputs = torch.from_numpy(episode.inputs)[None]
    queries = torch.from_numpy(episode.queries)[flat]
    labels = torch.from_numpy(episode.labels)[flat]
    params = [*nets.memory.parameters(), *nets.predictor.parameters()]
    optimizer = torch.optim.Adam(params, lr=5e-4)
    saved, saved_params, times = [], [], []
    for _ in range(updates):
        t0 = time.perf_counter()
        with count_saved_bytes(params) as counted:
            out, _ = nets.memory(inputs, nets.memory.initial_state(1))
            pred = nets.predictor(out[0, steps], queries)
            loss = pointwise_loss(pred, labels, nets.kind).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        times.append(time.perf_counter() - t0)
        saved.append(counted.activations)
        saved_params.append(counted.parameters)
        del out, pred, loss
    return {"saved_bytes": max(saved), "saved_parameter_bytes": max(saved_params),
            "seconds_per_update": statistics.median(times)}


def extrapolate_bptt(results: list[dict], lengths: list[int]) -> list[dict]:
    """BPTT rows for ``lengths`` not measured, from the two longest measured BPTT rows.

    BPTT keeps every step's activations for its one backward pass, so its saved bytes and
    its seconds per update are linear in T (a + b·T, fitted through the two points); the
    rows carry ``status: "extrapolated"`` so no one mistakes them for measurements.
    """
    measured = sorted((r for r in results if r["method"] == "bptt" and r["status"] == "ok"),
                      key=lambda r: r["length"])[-2:]
    if len(measured) < 2:
        return []
    (t0, r0), (t1, r1) = ((r["length"], r) for r in measured)

    def line(key: str, t: int) -> float:
        slope = (r1[key] - r0[key]) / (t1 - t0)
        return r1[key] + slope * (t - t1)

    return [{"method": "bptt", "length": t, "status": "extrapolated",
             "saved_bytes": int(line("saved_bytes", t)),
             "saved_parameter_bytes": r1.get("saved_parameter_bytes", 0),
             "peak_rss_bytes": int(line("peak_rss_bytes", t)),
             "seconds_per_update": line("seconds_per_update", t),
             "from_lengths": [t0, t1]} for t in lengths]


def run_case(method: str, length: int, rollout: int, updates: int) -> dict:
    """Measures one (method, length) case in this process."""
    torch.manual_seed(0)
    nets = tmaze_nets()
    result = (_memup(nets, length, rollout, updates) if method == "memup"
              else _bptt(nets, length, updates))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"method": method, "length": length, **result, "peak_rss_bytes": peak,
            "status": "ok"}


def main() -> None:
    p = argparse.ArgumentParser(description="one memory-benchmark case (used by memup bench)")
    p.add_argument("--method", choices=["memup", "bptt"], required=True)
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--rollout", type=int, default=20)
    p.add_argument("--updates", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(json.dumps(run_case(a.method, a.length, a.rollout, a.updates)))


if __name__ == "__main__":
    main()
