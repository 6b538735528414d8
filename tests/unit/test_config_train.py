"""`memup train` config files in `memup up`'s format: shared keys, [train], base, errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cli.main import _leaf_parser, build_parser
from cli.options import parse_with_config


def train_args(*argv: str) -> argparse.Namespace:
    parser = build_parser()
    return parse_with_config(parser, _leaf_parser(parser, ["train", *argv]), ["train", *argv])


def error_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line a refused ``memup train`` command prints."""
    with pytest.raises(SystemExit) as exit_info:
        train_args(*argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_shared_keys_and_the_train_table_set_the_flags(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(
        '[task]\nlength = 300\nmode = "LN"\n[memup]\nlanes = 8\nlr = 1e-3\nchrono = 0\n'
        'ema_decay = 0.9\n[run]\nseed = 5\n[train]\neval_every = 7\nlazy = true\n')
    (tmp_path / "variant.toml").write_text('base = "base.toml"\n[memup]\nlr = 2e-3\n')
    args = train_args("tmaze-memory", "--config", str(tmp_path / "variant.toml"),
                      "--eval-every", "9")
    assert (args.length, args.mode, args.lanes, args.lr, args.chrono_horizon) == (
        300, "LN", 8, 2e-3, 0)
    assert (args.ema_decay, args.seed, args.lazy) == (0.9, 5, True)
    assert args.eval_every == 9  # the command line wins over the file


def test_copys_memup_ema_decay_is_its_per_update_decay(tmp_path: Path) -> None:
    path = tmp_path / "copy.toml"
    path.write_text("[memup]\nema_decay = 0.99\n[scorer]\ntop_k = 4\n[train]\n"
                    "ema_per_cycle = 0.5\n")
    args = train_args("copy", "--config", str(path))
    assert (args.ema_per_update, args.ema_per_cycle, args.top_k) == (0.99, 0.5, 4)


def test_flat_and_sectioned_files_give_the_same_flags(tmp_path: Path) -> None:
    (tmp_path / "flat.toml").write_text("length = 40\nlr = 0.01\neval_every = 3\n")
    (tmp_path / "tables.toml").write_text(
        "[task]\nlength = 40\n[memup]\nlr = 0.01\n[train]\neval_every = 3\n")
    flat = vars(train_args("add", "--config", str(tmp_path / "flat.toml")))
    tables = vars(train_args("add", "--config", str(tmp_path / "tables.toml")))
    assert {k: v for k, v in flat.items() if k not in ("config", "run")} == {
        k: v for k, v in tables.items() if k not in ("config", "run")}


@pytest.mark.parametrize(("text", "needle"), [
    ("[memup]\nhidden = 64\n", "[memup] hidden is a memup up setting this command does not"),
    ("[ppo]\nlr = 1e-3\n", "[ppo] lr is a memup up setting this command does not use"),
    ("[memup]\nlearning_rate = 1e-3\n", "unknown keys ['[memup] learning_rate']"),
    ("[train]\nlenght = 3\n", "unknown keys ['lenght']"),
    ("[train]\nlr = 1e-3\n", "[train] lr is written [memup] lr, as in memup up"),
    ("[train]\nema_per_update = 0.9\n", "is written [memup] ema_decay"),
    ("[train]\nema_decay = 0.9\n", "ema_decay was renamed to ema_per_cycle"),
    ("[task]\nlength = -4\n", "[task] length = -4: must be a positive integer"),
    ('base = "missing.toml"\n', "cannot read config"),
])
def test_bad_train_files_fail_in_one_line(text: str, needle: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert needle in error_of(capsys, "copy", "--config", str(path))
