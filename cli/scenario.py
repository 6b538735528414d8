"""``memup scenario two-colors``: write the generated ViZDoom Two-Colors WAD to a file."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from cli.options import HelpFormatter

EXAMPLES = """examples:
  memup scenario two-colors --out two_colors.wad
  memup scenario two-colors --out hard.wad --variant hard
  memup scenario two-colors --out delay.wad --variant delay --delay-tics 2000
  memup scenario two-colors --out safe.wad --no-floor-damage     # long random-policy episodes
  memup scenario two-colors --out two_colors.wad --pictures docs/img --json

The envs build and cache the same file by themselves on first use (under $MEMUP_CACHE_DIR,
default ~/.cache/memup/); this command is for looking at it or using it elsewhere, e.g.
  python -c "import vizdoom as v; g = v.DoomGame(); g.set_doom_scenario_path('two_colors.wad')"
"""


def add_scenario_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``memup scenario two-colors``."""
    scenario = sub.add_parser("scenario", help="generate scenario files (ViZDoom WADs)",
                              formatter_class=HelpFormatter, epilog=EXAMPLES,
                              description="Generate scenario files.")
    kinds = scenario.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    p = kinds.add_parser(
        "two-colors", formatter_class=HelpFormatter, epilog=EXAMPLES,
        help="the Two-Colors WAD: UDMF map + DECORATE logic, no ACS",
        description="Write the Two-Colors scenario (memup-spec B.4) as a PWAD: a UDMF map "
        "(the engine builds the nodes) and DECORATE actors that pick the pillar colour, "
        "spawn the items and count pickups. The file is the same for the same options.")
    p.add_argument("--out", type=Path, required=True, help="the WAD file to write")
    p.add_argument("--variant", default="standard", choices=["standard", "hard", "delay"],
                   help="standard: pillar straight ahead; hard: pillar out of the first view; "
                        "delay: pillar room, medikit room, then a two-item choice worth +5")
    p.add_argument("--delay-tics", type=int, default=2000,
                   help="tics in the medikit room (delay variant only)")
    p.add_argument("--no-floor-damage", dest="floor_damage", action="store_false",
                   help="keep the nukage look without its 8 HP / 16 tics damage")
    p.add_argument("--seed", type=int, default=None,
                   help="recorded in the summary only: it does not change the file, because "
                        "the colour and item spots are drawn by the engine's RNG at play time "
                        "(seed TwoColorsEnv to repeat them); with --pictures, the first seed "
                        "tried")
    p.add_argument("--pictures", type=Path, default=None, metavar="DIR",
                   help="also save the first observation of a red- and a green-pillar "
                        "episode (x4, nearest) as PNGs in DIR")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run_scenario)


def run_scenario(args: argparse.Namespace) -> int:
    """Writes the WAD (and optionally the pictures) and prints what was written."""
    from tasks.two_colors.scenario import build_scenario

    if args.delay_tics < 0:
        raise SystemExit(f"--delay-tics must be >= 0, got {args.delay_tics}")
    path = build_scenario(args.out, args.variant, args.delay_tics, args.floor_damage)
    blob = path.read_bytes()
    summary = {"path": str(path), "bytes": len(blob),
               "sha256": hashlib.sha256(blob).hexdigest(), "variant": args.variant,
               "delay_tics": args.delay_tics if args.variant == "delay" else None,
               "floor_damage": args.floor_damage, "seed": args.seed, "pictures": []}
    if args.pictures is not None:
        from tasks.two_colors.pictures import save_pictures

        summary["pictures"] = [str(p) for p in save_pictures(
            args.pictures, args.variant, first_seed=args.seed or 0)]
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"wrote {path}: {len(blob)} bytes, sha256 {summary['sha256'][:16]}…, "
          f"variant {args.variant}"
          + (f", delay {args.delay_tics} tics" if args.variant == "delay" else "")
          + ("" if args.floor_damage else ", no floor damage"))
    for picture in summary["pictures"]:
        print(f"wrote {picture}")
    return 0
