"""``memup train`` config files, in the format of ``memup up``'s: ``[section] key = value``
tables, ``base = "other.toml"``, read by the same reader (:func:`common.config.file_layers`).

A setting both commands have sits under the section and key it has in ``memup up``
(:data:`SHARED`: ``[memup] lr``, ``[task] length``); the rest sit in a ``[train]`` table
under their flag's name (``--max-minutes`` is ``max_minutes``). The older flat files (flag
names at the top level) still load.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.config import ClusterConfig, ConfigError, file_layers
from common.config_renames import Renamed, train_message

TRAIN = "train"  #: the table of the flags ``memup up`` has no key for

#: ``memup up`` (section, key) -> the flags it sets, the first one a task has (Copy's
#: per-update EMA decay is its --ema-per-update)
SHARED: dict[tuple[str, str], tuple[str, ...]] = {
    ("task", "length"): ("length",),
    ("task", "mode"): ("mode",),
    ("memup", "lanes"): ("lanes",),
    ("memup", "rollout"): ("rollout",),
    ("memup", "frequency"): ("frequency",),
    ("memup", "lr"): ("lr",),
    ("memup", "ema_decay"): ("ema_per_update", "ema_decay"),
    ("memup", "chrono"): ("chrono_horizon",),
    ("memup", "interaction"): ("interaction",),
    ("memup", "target_accuracy"): ("target_accuracy",),
    ("memup", "max_updates"): ("max_updates",),
    ("scorer", "top_k"): ("top_k",),
    ("run", "seed"): ("seed",),
    ("run", "device"): ("device",),
    ("run", "tensorboard"): ("tensorboard",),
}


def config_values(path: Path, actions: Mapping[str, argparse.Action],
                  renamed: Mapping[str, Renamed]) -> dict[str, tuple[str, Any]]:
    """Flag dest -> (where the file set it, value) for the config file ``path``.

    Args:
        path: the ``--config`` file.
        actions: the subcommand's flags by dest (renamed ones left out).
        renamed: old flag dest -> what replaced it.

    Raises:
        ConfigError: an unreadable file, an unknown, renamed or unused key.
    """
    values: dict[str, tuple[str, Any]] = {}
    for tables, where in file_layers(path):
        for name, value in tables.items():
            if isinstance(value, dict):
                for key, item in value.items():
                    values[_dest(name, key, where, actions, renamed, flat=False)] = (
                        f"{where}: [{name}] {key}", item)
            else:  # the flat format: a flag's name at the top level
                values[_dest(TRAIN, name, where, actions, renamed, flat=True)] = (
                    f"{where}: {name}", value)
    return values


def _dest(section: str, key: str, where: str, actions: Mapping[str, argparse.Action],
          renamed: Mapping[str, Renamed], flat: bool) -> str:
    """The flag ``[section] key`` sets (``flat``: a top-level key of the older format),
    or a ConfigError saying why none."""
    if section == TRAIN:
        if key in renamed:
            raise ConfigError(f"{where}: {train_message(key, renamed[key], flag=False)}")
        shared = [f"[{s}] {k}" for (s, k), dests in SHARED.items() if key in dests]
        if shared and not flat:  # one place per setting in the sectioned format
            raise ConfigError(f"{where}: [{TRAIN}] {key} is written {shared[0]}, as in "
                              "memup up")
        if key in actions:
            return key
        raise ConfigError(f"{where} has unknown keys {[key]}; valid keys: {sorted(actions)}")
    for dest in SHARED.get((section, key), ()):
        if dest in actions:
            return dest
    cluster = ClusterConfig().to_dict()
    if key in cluster.get(section, {}):
        usable = sorted(f"[{s}] {k}" for (s, k), dests in SHARED.items()
                        if any(d in actions for d in dests))
        raise ConfigError(f"{where}: [{section}] {key} is a memup up setting this command "
                          f"does not use; it reads {', '.join(usable)} and [{TRAIN}]")
    raise ConfigError(f"{where} has unknown keys {[f'[{section}] {key}']}; sections: "
                      f"{sorted({s for s, _ in SHARED})} and [{TRAIN}]")
