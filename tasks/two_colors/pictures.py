"""Saves the first observation of a red-pillar and a green-pillar episode as PNGs.

    python -m tasks.two_colors.pictures --out docs/img [--variant standard] [--seed 0]

Engine seeds from ``--seed`` on are tried until each colour has appeared; the 64 x 112
frames are upscaled with nearest-neighbour so a person can see what the agent sees.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from tasks.two_colors.env import TwoColorsEnv
from tasks.two_colors.layout import VARIANTS

MAX_SEEDS = 64


def first_frames(variant: str = "standard", first_seed: int = 0
                 ) -> dict[str, tuple[int, np.ndarray]]:
    """Colour → (engine seed, first observation [3, 64, 112]) for both pillar colours,
    trying seeds from ``first_seed`` on."""
    env = TwoColorsEnv(variant=variant)
    found: dict[str, tuple[int, np.ndarray]] = {}
    try:
        for seed in range(first_seed, first_seed + MAX_SEEDS):
            obs, info = env.reset(seed=seed)
            found.setdefault(info["pillar"], (seed, obs))
            if len(found) == 2:
                return found
    finally:
        env.close()
    raise RuntimeError(f"only {sorted(found)} pillars in {MAX_SEEDS} seeds")


def save_pictures(out: Path, variant: str = "standard", scale: int = 4,
                  first_seed: int = 0) -> list[Path]:
    """Writes ``two_colors_first_frame_{red,green}.png`` (prefixed by a non-standard variant)."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = "two_colors" if variant == "standard" else f"two_colors_{variant}"
    paths = []
    for colour, (_, obs) in sorted(first_frames(variant, first_seed).items(), reverse=True):
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
    parser.add_argument("--seed", type=int, default=0, help="the first engine seed tried")
    args = parser.parse_args(argv)
    for path in save_pictures(args.out, args.variant, args.scale, args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
