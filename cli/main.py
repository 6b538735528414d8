"""The ``memup`` console script: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import sys

from cli.bench import add_bench_parsers
from cli.evaluate import add_eval_parser
from cli.options import HelpFormatter, Parser, parse_with_config
from cli.plot import add_plot_parser
from cli.probe import add_probe_parser
from cli.roles import add_keys_parser, add_role_parsers
from cli.scenario import add_scenario_parser
from cli.train import add_train_parsers
from cli.up import add_up_parser

EXAMPLES = """examples:
  memup up                                                # local cluster, T-Maze-LNR-1000
  memup train tmaze-memory --length 1000 --rollout 20     # phase I on T-Maze-LNR-1000
  memup train copy --length 120                           # Copy-120
  memup bench memory --lengths 1000,10000,100000 --json   # bytes stored for backward
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="memup", formatter_class=HelpFormatter, epilog=EXAMPLES,
        description="MemUP: learning very long-term memory by predicting uncertain outcomes.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_up_parser(sub)
    add_train_parsers(sub)
    add_bench_parsers(sub)
    add_plot_parser(sub)
    add_eval_parser(sub)
    add_probe_parser(sub)
    add_role_parsers(sub)
    add_keys_parser(sub)
    add_scenario_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parses ``argv`` (default ``sys.argv[1:]``) and runs the chosen command."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parse_with_config(parser, _leaf_parser(parser, argv), argv)
    return int(args.run(args) or 0)


def _leaf_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the deepest subcommand named in ``argv`` (where ``--config`` applies)."""
    current = parser
    for word in argv:
        actions = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or word not in actions[0].choices:
            continue
        current = actions[0].choices[word]
    return current


if __name__ == "__main__":
    sys.exit(main())
