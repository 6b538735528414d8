"""The ledger's figures: lost, trained twice and rolled back, from events as roles write them."""

from __future__ import annotations

from pathlib import Path

from common.ledger import Ledger, figures


def _ids(n: int, start: int = 1000) -> list[str]:
    return [f"{start + i}-0" for i in range(n)]


def test_a_restart_rolls_back_instead_of_counting_twice(tmp_path: Path) -> None:
    actor, first, second = (Ledger(tmp_path, role) for role in ("actor", "l1", "l2"))
    first.record("resumed", inc="a", u=0)
    first.record("ppo_start", id="999-0")
    for ep, entry in zip("pqrstuvw", _ids(8)):
        actor.record("produced", ep=ep, id=entry)
    first.episodes("trained", list("pq"), inc="a", u=1)
    first.episodes("trained", list("rs"), inc="a", u=2)  # after its last checkpoint (u=1)
    second.record("resumed", inc="b", u=1)
    second.episodes("trained", list("rs"), inc="b", u=2)  # trained again: a rollback, no dup
    second.episodes("dropped", ["t"], why="stale")
    second.episodes("trained", list("vw"), inc="b", u=3)
    f = figures(tmp_path)
    assert (f.trained, f.rolled_back, f.trained_twice, f.dropped) == (6, 2, 0, 1)
    assert f.lost == 1  # u: older than the last update's episodes, never trained
    assert f.unconsumed == 0 and f.incarnations == 2


def test_a_second_training_in_kept_updates_is_counted(tmp_path: Path) -> None:
    actor, learner = Ledger(tmp_path, "actor"), Ledger(tmp_path, "learner")
    learner.record("resumed", inc="a", u=0)
    learner.record("ppo_start", id="999-0")
    for ep, entry in zip("pqr", _ids(3)):
        actor.record("produced", ep=ep, id=entry)
    learner.episodes("trained", ["p"], inc="a", u=1)
    learner.episodes("trained", ["p", "q"], inc="a", u=2)
    f = figures(tmp_path)
    assert f.trained_twice == 1 and f.lost == 0 and f.unconsumed == 1  # r: still waiting


def test_phase_one_episodes_must_be_scored(tmp_path: Path) -> None:
    actor, scorer = Ledger(tmp_path, "actor"), Ledger(tmp_path, "scorer")
    for ep, entry in zip("pqr", _ids(3)):
        actor.record("produced", ep=ep, id=entry)
    scorer.episodes("scored", ["p", "r"])
    assert figures(tmp_path).lost == 1
    assert figures(tmp_path, grace_s=60).lost == 0  # too recent to be due


def test_an_unset_ledger_writes_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("MEMUP_LEDGER", raising=False)
    ledger = Ledger.from_env("actor")
    ledger.record("produced", ep="p", id="1-0")
    assert not ledger.on and not list(tmp_path.iterdir())
