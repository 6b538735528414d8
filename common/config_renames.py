"""Config keys that were renamed or removed.

A config file, ``MEMUP_*`` variable, ``--set`` flag or ``memup train`` flag or config key
that uses an old name fails with one line naming what replaced it, instead of being
ignored or, worse, read with a new meaning. Entries stay here for good.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Renamed(NamedTuple):
    """What became of an old key: its new name ("" when removed) and how to convert."""

    new: str
    note: str = ""
    #: only the name changed: a run's own resolved config.json (machine-written by an older
    #: version) is read under the new name instead of failing
    same_meaning: bool = False


#: ``memup up`` configs: (section, old key) -> what replaced it
CLUSTER: dict[tuple[str, str], Renamed] = {
    # a bool for all envs became the share of envs (the shipped configs said false)
    ("task", "data_floor_damage"): Renamed(
        "data_floor_damage_share", "a share of the envs: false is 0.0, true is 1.0"),
    # it always counted outcomes, which are episodes only where a task has one an episode
    ("memup", "accuracy_episodes"): Renamed(
        "accuracy_outcomes", "the newest scored outcomes; some tasks have many an episode",
        same_meaning=True),
}

#: ``memup train copy`` / ``scattered-copy`` flags and config keys: old -> what replaced it.
#: Copy's ``ema_decay`` was the once-per-cycle decay while T-Maze's and Add's ``ema_decay``
#: is per update; the new name keeps one meaning per name.
TRAIN_COPY: dict[str, Renamed] = {
    "ema_decay": Renamed("ema_per_cycle", "the alternating schedule's EMA decay, applied "
                         "once per cycle; ema_per_update is the joint schedule's"),
}


def cluster_message(section: str, key: str) -> str | None:
    """``[section] key was renamed to [section] new (note)``, or None for a current key."""
    entry = CLUSTER.get((section, key))
    if entry is None:
        return None
    return _message(f"[{section}] {key}", f"[{section}] {entry.new}" if entry.new else "",
                    entry.note)


def upgrade_resolved(values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A run's resolved config (its config.json) with keys renamed since it was written put
    under their new names, where only the name changed; others stay and fail as usual."""
    out = {section: dict(table) for section, table in values.items()}
    for (section, old), entry in CLUSTER.items():
        table = out.get(section)
        if entry.same_meaning and table is not None and old in table:
            table.setdefault(entry.new, table.pop(old))
    return out


def train_message(old: str, entry: Renamed, flag: bool) -> str:
    """The same line for a ``memup train`` flag (``--old-name``) or config key."""
    def name(key: str) -> str:
        return "--" + key.replace("_", "-") if flag else key

    return _message(name(old), name(entry.new) if entry.new else "", entry.note)


def _message(old: str, new: str, note: str) -> str:
    what = f"was renamed to {new}" if new else "was removed"
    return f"{old} {what}" + (f" ({note})" if note else "")
