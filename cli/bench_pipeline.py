"""``memup bench pipeline``: end-to-end env steps/s through the cluster against raw stepping.

Raw: the same envs stepped in one process with random actions, nothing else. End to end:
a real local cluster (embedded Redis, actors, a scorer, the learner in phase I) measured
over a window after warm-up: env steps published by the actors, steps scored into the
replay window, steps the learner trained on. Per-hop latencies are read from the roles'
Prometheus histograms (quantiles interpolated within buckets, as PromQL's
``histogram_quantile`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

HOPS = {
    # name: (role, metric, labels, what it times)
    "actor_publish": ("actor", "memup_actor_fragment_publish_duration_seconds", {},
                      "actor -> Redis: one fragment written (pipelined MULTI)"),
    "redis_to_scored": ("scorer", "memup_scorer_episode_wait_seconds", {},
                        "episode done (XADD) -> marked and in the replay window"),
    "segment_rtt": ("learner", "memup_learner_segment_rtt_seconds", {},
                    "learner -> scorer -> learner: segment request to reply (ZeroMQ)"),
    "learner_update": ("learner", "memup_learner_update_duration_seconds", {"kind": "memup"},
                       "one MemUP update (B lanes x r steps)"),
}


def raw_env_rate(config, envs: int, seconds: float, seed: int = 0) -> float:  # type: ignore[no-untyped-def]
    """Env steps/s of ``envs`` envs of the run's task (the data policy's), stepped in one
    loop with random actions."""
    from tasks.registry import task_for

    rng = np.random.default_rng(seed)
    task = task_for(config)
    pool = [task.make_env(slot, data_policy=True) for slot in range(envs)]
    for i, env in enumerate(pool):
        env.reset(seed=seed + i)
    n_actions = pool[0].action_space.n
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for env, action in zip(pool, rng.integers(0, n_actions, size=envs)):
            _, _, terminated, truncated, _ = env.step(int(action))
            if terminated or truncated:
                env.reset()
        steps += envs
    rate = steps / (time.perf_counter() - started)
    for env in pool:
        env.close()
    return rate


def histogram_quantile(text: str, name: str, labels: dict[str, str], q: float) -> float | None:
    """The ``q`` quantile of histogram ``name`` in an exposition ``text`` (None if empty)."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != f"{name}_bucket":
                continue
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            le = float(sample.labels["le"])
            buckets[le] = buckets.get(le, 0.0) + sample.value
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] == 0:
        return None
    rank = q * buckets[edges[-1]]
    lower, below = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if edge == float("inf"):
                return lower
            return lower + (edge - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = edge, count
    return lower


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return reply.read().decode()


def run_pipeline_bench(args: argparse.Namespace) -> int:
    from cli.bench_env import bench_base, bench_config
    from cli.supervisor import Child, Supervisor, role_argv
    from common import keys
    from common.embedded_redis import EmbeddedRedis
    from common.metrics import SupervisorMetrics
    from common.redis_io import connect
    from common.status import read_statuses
    from tasks.registry import task_for

    run = f"bench-{os.getpid()}"
    # the roles get the task's benchmark config file and these overrides
    _, base = bench_base(args.env)
    overrides = [*base, *args.overrides, f"run.name={run}", f"actor.envs={args.envs}",
                 f"actor.replicas={args.actors}", "memup.target_accuracy=1.01",
                 f"memup.replay_ratio={args.replay_ratio}", "memup.publish_every=25"]
    if args.length is not None:
        overrides.append(f"task.length={args.length}")
    config_path, config = bench_config(args.env, overrides)
    skip = task_for(config).frame_skip
    raw = raw_env_rate(config, args.envs, args.raw_seconds)
    with tempfile.TemporaryDirectory(prefix="memup-bench-") as tmp, EmbeddedRedis() as redis:
        overrides.append(f"run.dir={tmp}")
        children = [Child("learner-0", "learner",
                          role_argv("learner", None, config_path, overrides),
                          Path(tmp) / "learner.log")]
        children.append(Child("scorer-0", "scorer", role_argv("scorer", 0, config_path, overrides),
                              Path(tmp) / "scorer.log"))
        children += [Child(f"actor-{i}", "actor", role_argv("actor", i, config_path, overrides),
                           Path(tmp) / f"actor-{i}.log") for i in range(args.actors)]
        supervisor = Supervisor(children, {**os.environ, "REDIS_URL": redis.url},
                                SupervisorMetrics())
        r = connect(redis.url)
        supervisor.start()
        try:
            deadline = time.monotonic() + args.warmup_seconds
            while time.monotonic() < deadline:  # warm-up: the learner is training
                supervisor.poll()
                learner = read_statuses(r, run).get("learner-0", {})
                if learner.get("memup_updates", 0) >= args.warmup_updates:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit(f"the cluster did not start training within "
                                 f"{args.warmup_seconds:.0f} s; see the logs in {tmp}")

            def totals() -> dict[str, float]:
                statuses = read_statuses(r, run)
                return {"published": float(r.get(keys.env_steps_key(run)) or 0),
                        "scored": statuses.get("scorer-0", {}).get("scored_steps", 0.0),
                        "trained": statuses.get("learner-0", {}).get("memup_steps", 0.0),
                        "time": time.monotonic()}

            first = totals()
            time.sleep(args.seconds)
            last = totals()
            statuses = read_statuses(r, run)
            texts = {name: _scrape(int(s["metrics_port"])) for name, s in statuses.items()
                     if "metrics_port" in s}
        finally:
            supervisor.stop()
    span = last["time"] - first["time"]
    rates = {k: (last[k] - first[k]) / span for k in ("published", "scored", "trained")}
    hops = {}
    for hop, (role, metric, labels, what) in HOPS.items():
        text = "\n".join(t for name, t in texts.items() if name.startswith(role))
        hops[hop] = {"what": what, "p50_seconds": histogram_quantile(text, metric, labels, 0.5),
                     "p99_seconds": histogram_quantile(text, metric, labels, 0.99)}
    result = {"env": args.env, "length": config.task.length, "actors": args.actors,
              "envs": args.envs, "frame_skip": skip,
              "cores": os.cpu_count(), "window_seconds": round(span, 1),
              "raw_env_steps_per_second": raw,
              "published_env_steps_per_second": rates["published"],
              "scored_env_steps_per_second": rates["scored"],
              "trained_steps_per_second": rates["trained"],
              "raw_frames_per_second": raw * skip,
              "scored_frames_per_second": rates["scored"] * skip,
              "end_to_end_ratio": rates["scored"] / raw, "hops": hops}
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


def print_table(result: dict) -> None:
    task = f"{result['env']}, length {result['length']}" + (
        f" (frame skip {result['frame_skip']}, frames = steps x skip)"
        if result["frame_skip"] != 1 else "")
    print(f"{task}, {result['actors']} actors x {result['envs']} envs, "
          f"{result['cores']} cores, measured over {result['window_seconds']} s")
    print(f"{'throughput':<40}{'steps/s':>12}{'frames/s':>12}{'vs raw':>9}")
    raw = result["raw_env_steps_per_second"]
    skip = result["frame_skip"]
    for label, key in (("raw env stepping, one process", "raw_env_steps_per_second"),
                       ("published by actors (-> Redis)", "published_env_steps_per_second"),
                       ("scored into the replay window", "scored_env_steps_per_second"),
                       ("trained on by the learner (with reuse)", "trained_steps_per_second")):
        print(f"{label:<40}{result[key]:>12,.0f}{result[key] * skip:>12,.0f}"
              f"{result[key] / raw:>9.3f}")
    print(f"\n{'hop':<18}{'p50 ms':>9}{'p99 ms':>9}  what")
    for hop, h in result["hops"].items():
        p50 = "-" if h["p50_seconds"] is None else f"{h['p50_seconds'] * 1e3:.2f}"
        p99 = "-" if h["p99_seconds"] is None else f"{h['p99_seconds'] * 1e3:.2f}"
        print(f"{hop:<18}{p50:>9}{p99:>9}  {h['what']}")
