"""``memup bench wire``: what each wire codec costs and saves on image fragments and segments.

Frames come from the Two-Colors env played with random actions (or from ``--frames``),
cut into the messages the cluster sends: actor fragments of 128 steps and learner segments
of 20 steps, with the step fields an actor publishes. Each codec encodes and decodes them
all through :mod:`common.wire`, in this process and one thread, as a role would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from common.wire import Message
    from common.wire_codec import WireCodec

EXAMPLES = """examples:
  memup bench wire                          # 1,024 Two-Colors frames, random actions
  memup bench wire --steps 4096 --json
  memup bench wire --frames frames.npy      # uint8 [n, 3, 64, 112], e.g. saved by --save
"""

FRAME_SHAPE = (3, 64, 112)
MESSAGES = {"fragment": 128, "segment": 20}
"""Steps per message: an actor's fragment, one lane's segment of a learner batch."""
DEFAULT_CODECS = "none,lz4,zstd:1,zstd:3"
MB = 1e6


def add_wire_parser(kinds: argparse._SubParsersAction) -> None:
    """Registers ``memup bench wire``."""
    from cli.options import HelpFormatter

    wire = kinds.add_parser(
        "wire", formatter_class=HelpFormatter, epilog=EXAMPLES,
        help="bytes per step and MB/s of each wire codec on Two-Colors frames",
        description="Encodes and decodes Two-Colors image fragments (128 steps) and segments "
        "(20 steps) with each wire codec: bytes per step, compression ratio, encode and "
        "decode MB/s (of raw bytes) and microseconds per message, one thread.")
    wire.add_argument("--frames", default=None, metavar="FILE.npy",
                      help="uint8 [n, 3, 64, 112] frames instead of playing the env")
    wire.add_argument("--steps", type=int, default=1024, help="env steps to collect")
    wire.add_argument("--seed", type=int, default=0, help="env and action seed")
    wire.add_argument("--codecs", default=DEFAULT_CODECS,
                      help="comma-separated codecs, zstd:LEVEL for a zstd level")
    wire.add_argument("--repeats", type=int, default=5, help="timed passes (the median counts)")
    wire.add_argument("--save", default=None, metavar="FILE.npy",
                      help="also save the frames used, for --frames later")
    wire.add_argument("--json", action="store_true", help="print one JSON object")
    wire.set_defaults(run=run_wire_bench)


def collect_frames(steps: int, seed: int) -> tuple[np.ndarray, int]:
    """``steps`` observations of Two-Colors under uniform random actions, and the episodes."""
    import numpy as np

    try:
        from tasks.two_colors.env import TwoColorsEnv
    except ImportError as exc:
        raise SystemExit(f"memup bench wire: the Two-Colors env is unavailable ({exc}); pass "
                         "--frames FILE.npy with uint8 [n, 3, 64, 112] frames") from exc
    rng = np.random.default_rng(seed)
    env = TwoColorsEnv(seed=seed)
    frames = np.empty((steps, *FRAME_SHAPE), np.uint8)
    obs, _ = env.reset()
    episodes = 1
    for t in range(steps):
        frames[t] = obs
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(8)))
        if (terminated or truncated) and t + 1 < steps:
            obs, _ = env.reset()
            episodes += 1
    if hasattr(env, "close"):
        env.close()
    return frames, episodes


def load_frames(path: str) -> np.ndarray:
    import numpy as np

    frames = np.load(path, allow_pickle=False)
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise SystemExit(f"{path}: need uint8 [n, 3, H, W] frames, got {frames.dtype} "
                         f"{frames.shape}")
    return frames


def build_messages(kind: str, frames: np.ndarray, seed: int) -> list[Message]:
    """The frames cut into fragments or segments, with an actor's other step fields (and a
    segment's targets: two per step)."""
    import numpy as np

    from common.wire import Fragment, Segment

    steps = MESSAGES[kind]
    rng = np.random.default_rng(seed)
    n = len(frames) // steps * steps
    if n == 0:
        raise SystemExit(f"need at least {steps} frames, got {len(frames)}")
    out: list[Message] = []
    for i, s in enumerate(range(0, n, steps)):
        arrays = {"obs": frames[s:s + steps],
                  "action": rng.integers(0, 8, steps, dtype=np.int64),
                  "reward": np.zeros(steps, np.float32),
                  "log_prob": np.full(steps, np.log(1 / 8), np.float32),
                  "value": rng.standard_normal(steps).astype(np.float32)}
        if kind == "fragment":
            out.append(Fragment(run="bench", actor="actor-0", episode="ep-0", index=i,
                                first_step=s, arrays=arrays, policy_version=0, final=False))
        else:
            targets = {"pair_step": np.repeat(np.arange(steps), 2),
                       "pair_target": rng.integers(s, n, 2 * steps)}
            out.append(Segment(segment_id=f"ep-0.{s}", lane=i % 64, episode="ep-0", offset=s,
                               arrays=arrays, targets=targets, policy_version=0,
                               rollout=steps))
    return out


def parse_codecs(text: str) -> list[WireCodec]:
    from common.wire_codec import WireCodec

    codecs = []
    for item in filter(None, text.split(",")):
        name, _, level = item.partition(":")
        try:
            codecs.append(WireCodec(name, int(level)) if level else WireCodec(name))
        except ValueError as exc:
            raise SystemExit(f"--codecs {item!r}: {exc}") from exc
    return codecs


def _raw_bytes(msg: Any) -> int:
    return sum(a.nbytes for field in ("arrays", "targets")
               for a in getattr(msg, field, {}).values())


def measure(msgs: list[Message], codec: WireCodec, repeats: int) -> dict[str, Any]:
    """Encoded bytes and median encode / decode seconds of all ``msgs`` with ``codec``."""
    import numpy as np

    from common.wire import decode, encode

    limit = 1 << 30
    frames = [encode(m, limit, codec) for m in msgs]
    for msg, got in zip(msgs, (decode(f, limit) for f in frames), strict=True):
        for key, array in msg.arrays.items():  # type: ignore[union-attr]
            if not np.array_equal(got.arrays[key], array):  # type: ignore[union-attr]
                raise AssertionError(f"{codec} changed {key} on a round trip")
    enc, dec = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for m in msgs:
            encode(m, limit, codec)
        enc.append(time.perf_counter() - start)
        start = time.perf_counter()
        for f in frames:
            decode(f, limit)
        dec.append(time.perf_counter() - start)
    return {"bytes": sum(map(len, frames)), "encode_s": statistics.median(enc),
            "decode_s": statistics.median(dec)}


def run_wire_bench(args: argparse.Namespace) -> int:
    """Measures every codec on every message size and prints a table or JSON."""
    import numpy as np

    codecs = parse_codecs(args.codecs)
    if args.frames:
        frames, data = load_frames(args.frames), {"source": args.frames, "episodes": None}
    else:
        if not args.json:
            print(f"collecting {args.steps} Two-Colors frames ...", file=sys.stderr, flush=True)
        frames, episodes = collect_frames(args.steps, args.seed)
        data = {"source": "two-colors random actions", "episodes": episodes, "seed": args.seed}
    if args.save:
        np.save(args.save, frames)
    data |= {"frames": len(frames), "frame_shape": list(frames.shape[1:]),
             "frame_bytes": int(frames[0].nbytes)}
    results = []
    for kind, steps in MESSAGES.items():
        msgs = build_messages(kind, frames, args.seed)
        raw = sum(_raw_bytes(m) for m in msgs)
        for codec in codecs:
            m = measure(msgs, codec, args.repeats)
            results.append({
                "message": kind, "steps": steps, "codec": codec.name,
                "level": codec.level if codec.name == "zstd" else None,
                "messages": len(msgs), "bytes_per_step": m["bytes"] / (len(msgs) * steps),
                "ratio": raw / m["bytes"],
                "encode_mb_s": raw / m["encode_s"] / MB, "decode_mb_s": raw / m["decode_s"] / MB,
                "encode_us": m["encode_s"] / len(msgs) * 1e6,
                "decode_us": m["decode_s"] / len(msgs) * 1e6,
            })
    machine = {"cpus": os.cpu_count(), "machine": platform.machine(),
               "python": platform.python_version()}
    if args.json:
        print(json.dumps({"data": data, "machine": machine, "results": results}))
        return 0
    print(f"data: {data['frames']} frames {data['frame_shape']} from {data['source']}; "
          f"{machine['cpus']} CPUs; MB = 10^6 bytes of raw arrays; medians of {args.repeats}")
    print(f"{'message':<15} {'codec':<7} {'B/step':>8} {'ratio':>6} {'enc MB/s':>9} "
          f"{'dec MB/s':>9} {'enc µs/msg':>11} {'dec µs/msg':>11}")
    for r in results:
        name = r["codec"] + (f":{r['level']}" if r["level"] is not None else "")
        print(f"{r['message'] + ' x' + str(r['steps']):<15} {name:<7} "
              f"{r['bytes_per_step']:>8.0f} {r['ratio']:>6.2f} {r['encode_mb_s']:>9.0f} "
              f"{r['decode_mb_s']:>9.0f} {r['encode_us']:>11.0f} {r['decode_us']:>11.0f}")
    return 0
