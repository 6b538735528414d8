"""``memup bench env`` builds any task's envs through the registry; the task adds its own
measures (tasks/two_colors: pickups) through optional hooks."""

from __future__ import annotations

import importlib.util
import json

import pytest

from cli.main import main


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["bench", "env", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tmaze_runs_from_its_bench_overrides_and_set_flags(
        capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "--env", "tmaze", "--steps", "300")
    assert result["env"] == "tmaze" and result["length"] == 100 and result["frame_skip"] == 1
    assert result["agent_steps"] == 300 and result["episodes_ended"] == 2
    assert "pickups_per_episode" not in result  # T-Maze adds no measures
    assert run_json(capsys, "--env", "tmaze", "--set", "task.length=20", "--steps", "100",
                    "--envs", "2")["length"] == 20
    assert run_json(capsys, "--env", "tmaze", "--length", "30", "--steps", "10")["length"] == 30


def test_table_and_rejected_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "env", "--env", "tmaze", "--steps", "200"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tmaze, length 100, frame skip 1;") and "agent steps/s" in out
    with pytest.raises(SystemExit, match="has no frame skip"):
        main(["bench", "env", "--env", "tmaze", "--frame-skip", "4", "--steps", "10"])
    with pytest.raises(SystemExit, match=r"task\.env 'nope'"):
        main(["bench", "env", "--env", "nope", "--steps", "10"])


@pytest.mark.skipif(importlib.util.find_spec("popgym") is None, reason="popgym not installed")
def test_a_gym_task_runs(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "--env", "gym:popgym:popgym-RepeatPreviousEasy-v0",
                      "--steps", "200")
    assert result["agent_steps"] == 200 and result["episodes_ended"] >= 1
