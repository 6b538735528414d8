"""Saves the first observation of a red-pillar and a green-pillar episode as PNGs.

    python -m actor.envs.two_colors.pictures --out docs/img [--variant standard] [--scale 4]

Seeds 0, 1, 2, … are tried until each colour has appeared; the 64 x 112 frames are
upscaled with nearest-neighbour so a person can see what the agent sees.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from actor.envs.two_colors.env import TwoColorsEnv
from actor.envs.two_colors.layout import VARIANTS

MAX_SEEDS = 64


def first_frames(variant: str = "standard") -> dict[str, tuple[int, np.ndarray]]:
    """Colour → (engine seed, first observation [3, 64, 112]) for both pillar colours."""
    env = TwoColorsEnv(variant=variant)
    found: dict[str, tuple[int, np.ndarray]] = {}
    try:
        for seed in range(MAX_SEEDS):
            obs, info = env.reset(seed=seed)
            found.setdefault(info["pillar"], (seed, obs))
            if len(found) == 2:
                return found
    finally:
        env.close()
    raise RuntimeError(f"only {sorted(found)} pillars in {MAX_SEEDS} seeds")


def save_pictures(out: Path, variant: str = "standard", scale: int = 4) -> list[Path]:
    """Writes ``two_colors_first_frame_{red,green}.png`` (prefixed by a non-standard variant)."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = "two_colors" if variant == "standard" else f"two_colors_{variant}"
    paths = []
    for colour, (_, obs) in sorted(first_frames(variant).items(), reverse=True):
        image = Image.fromarray(obs.transpose(1, 2, 0))
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        path = out / f"{prefix}_first_frame_{colour}.png"
        image.save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="directory")
    parser.add_argument("--variant", default="standard", choices=VARIANTS)
    parser.add_argument("--scale", type=int, default=4, help="nearest-neighbour upscale")
    args = parser.parse_args(argv)
    for path in save_pictures(args.out, args.variant, args.scale):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
