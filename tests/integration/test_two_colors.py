"""The generated Two-Colors scenario in the real ViZDoom engine (headless).

Pickup tests steer with the engine's object list (positions of every actor), turned on in a
test subclass; the env under test is otherwise the one the actors use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from tasks.two_colors.decorate import COUNTER_WRAP_AT
from tasks.two_colors.env import FRAME_SHAPE, N_ACTIONS, TwoColorsEnv

LEFT, RIGHT, FORWARD = 0, 1, 2
LIVING = 0.02  # 0.01 per tic, frame skip 2
PILLAR_TOP = (slice(27, 32), slice(52, 61))
"""Rows and columns of a 64 x 112 frame where the standard pillar (181 units ahead) rises
above the horizon (row 32): only wall behind it, never an item, never the green floor."""
WALL_COLS = slice(16, 40)
MATCHING_LOOK = {"green": "Green", "red": "Blue"}
"""The armour look (class-name suffix) that matches each pillar colour."""


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMUP_CACHE_DIR", str(tmp_path_factory.mktemp("wads")))
        yield


class ProbeEnv(TwoColorsEnv):
    objects_info = True


def red_green(obs: np.ndarray, rows: slice = PILLAR_TOP[0], cols: slice = PILLAR_TOP[1]
              ) -> tuple[float, float]:
    """Fractions of pixels that are pillar-red and green-dominant in a region."""
    r, g, _ = obs[:, rows, cols].astype(int)
    return float(((r > 100) & (r > 2 * g)).mean()), float((g > r).mean())


def greenness(obs: np.ndarray, rows: slice = PILLAR_TOP[0], cols: slice = PILLAR_TOP[1]
              ) -> float:
    """Mean G - R of a region minus that of the wall beside it, same rows: > 0 for the green
    pillar, < 0 for the red one. Relative to the wall because the floor's first hit tints
    the whole first frame red."""
    box, wall = (obs[:, rows, c].astype(float).mean(axis=(1, 2)) for c in (cols, WALL_COLS))
    return float((box[1] - box[0]) - (wall[1] - wall[0]))


def bearing(env: ProbeEnv, name_filter: Callable[[str], bool]) -> float | None:
    """Degrees to turn left to face the nearest actor whose class name passes the filter."""
    objects = env.game.get_state().objects
    me = next(o for o in objects if o.name == "DoomPlayer")
    targets = [o for o in objects if name_filter(o.name)]
    if not targets:
        return None
    t = min(targets, key=lambda o: math.hypot(o.position_x - me.position_x,
                                              o.position_y - me.position_y))
    to = math.degrees(math.atan2(t.position_y - me.position_y, t.position_x - me.position_x))
    return (to - me.angle + 540) % 360 - 180


def steer(env: ProbeEnv, name_filter: Callable[[str], bool], tolerance: float = 12) -> int:
    """Turn toward, then walk to, the nearest actor whose class name passes the filter."""
    off = bearing(env, name_filter)
    if off is None:
        return LEFT
    return LEFT if off > tolerance else RIGHT if off < -tolerance else FORWARD


def _items(env: ProbeEnv) -> dict[int, str] | None:
    state = env.game.get_state()
    return None if state is None else {o.id: o.name for o in state.objects
                                       if o.name.startswith("TwoColors") and "Pillar" not in o.name}


def pickup_events(env: ProbeEnv, name_filter: Callable[[str], bool], count: int,
                  limit: int = 400) -> list[tuple[list[str], float, int, int, dict]]:
    """Walks to matching items until ``count`` steps picked something up; per such step:
    (class names of the items that vanished, reward, health before, health after, info)."""
    events = []
    health = env._info()["health"]
    for _ in range(limit):
        before = _items(env)
        _, reward, terminated, truncated, info = env.step(steer(env, name_filter))
        assert info["health"] <= 100, "healing must be capped at 100 HP"
        after = _items(env)
        if after is None:  # died: the engine has no state left to compare
            return events
        vanished = [name for id_, name in before.items() if id_ not in after]
        if vanished:
            events.append((vanished, reward, health, info["health"], info))
        if len(events) == count or terminated or truncated:
            return events
        health = info["health"]
    raise AssertionError(f"{len(events)} of {count} pickups in {limit} steps")


def test_contract_constants() -> None:
    assert N_ACTIONS == 8 and FRAME_SHAPE == (3, 64, 112)


@pytest.mark.parametrize("kwargs", [{"variant": "standard"}, {"variant": "hard"},
                                    {"variant": "delay", "delay_tics": 100},
                                    {"variant": "standard", "floor_damage": False}],
                         ids=["standard", "hard", "delay", "no-floor-damage"])
def test_wad_loads_and_frames_have_the_contract_shape(kwargs: dict) -> None:
    env = TwoColorsEnv(**kwargs, seed=0)
    try:
        obs, info = env.reset()
        assert obs.shape == FRAME_SHAPE and obs.dtype == np.uint8 and obs.flags.c_contiguous
        assert env.observation_space.contains(obs) and env.action_space.n == N_ACTIONS
        assert set(info) >= {"pillar", "good_pickups", "bad_pickups", "steps", "health"}
        assert info["pillar"] in ("red", "green") and info["steps"] == 0
        for action in range(N_ACTIONS):
            obs, reward, terminated, truncated, info = env.step(action)
            assert obs.shape == FRAME_SHAPE and obs.dtype == np.uint8
            assert not (terminated or truncated) and info["steps"] == action + 1
            assert reward == pytest.approx(env.layout.living_reward * 2)
        assert obs.max() > 0
    finally:
        env.close()


def test_hundred_episodes_colours_balanced_and_pillar_visible_first() -> None:
    env = TwoColorsEnv(timeout_steps=3)
    colours, undecided = [], []
    try:
        for seed in range(100):
            obs, info = env.reset(seed=seed)
            g = greenness(obs)
            seen = "red" if g < -20 else "green" if g > 5 else None
            assert seen in (None, info["pillar"]), (seed, info["pillar"], g)
            if seen is None:  # e.g. an item spawned right in front of the player hides it
                undecided.append(seed)
            colours.append(info["pillar"])
            done = False
            while not done:  # the scripted policy: walk forward until the timeout
                _, _, terminated, truncated, info = env.step(FORWARD)
                done = terminated or truncated
            assert truncated and info["survival_steps"] == 3
    finally:
        env.close()
    assert len(undecided) <= 3, undecided
    share = colours.count("red") / len(colours)
    assert 0.35 <= share <= 0.65, share


@pytest.mark.parametrize("seed", [0, 1, 3, 5])
def test_pillar_shows_then_vanishes_after_90_tics(seed: int) -> None:
    env = TwoColorsEnv(seed=seed)
    try:
        obs, info = env.reset()
        frames = [obs]
        for t in range(50):
            frames.append(env.step(FORWARD if t % 2 else 3)[0])  # back, forward: stay near
        sign = -1 if info["pillar"] == "red" else 1
        shown = [round(greenness(f)) for f in frames]
        # Observations 0..44 are tics 1..89; the pillar's 90 tics end before tic 91.
        assert all(sign * g > 10 for g in shown[:45]), shown
        assert all(abs(g) < 2 for g in shown[45:]), shown
        index = 0 if info["pillar"] == "red" else 1
        assert max(red_green(f)[index] for f in frames[:10]) > 0.4
    finally:
        env.close()


def test_hard_pillar_is_out_of_the_first_view() -> None:
    env = ProbeEnv(variant="hard", seed=1, floor_damage=False)
    try:
        obs, info = env.reset()
        assert abs(greenness(obs)) < 1.5
        assert bearing(env, lambda n: "Pillar" in n) > 50  # beyond the half field of view
        for _ in range(30):  # turn left until facing it: there it is, small and far
            action = steer(env, lambda n: "Pillar" in n, tolerance=4)
            if action == FORWARD:
                break
            obs = env.step(action)[0]
        g = greenness(obs)
        assert g < -4 if info["pillar"] == "red" else g > 2, g
    finally:
        env.close()


@pytest.mark.parametrize("seed", [0, 1])
def test_pickups_follow_the_pillar(seed: int) -> None:
    env = ProbeEnv(seed=seed, floor_damage=False)  # no drain: two bad pickups do not kill
    try:
        info = env.reset()[1]
        good = MATCHING_LOOK[info["pillar"]]
        # Walk to the other look twice, then to the good one twice (so healing shows below
        # 100 HP); on the way the walk may cross other items, so each step is checked by
        # what vanished in it.
        events = []
        for look in ("Blue" if good == "Green" else "Green", good):
            events += pickup_events(env, lambda n, look=look: n.endswith(look), count=2)
        kinds = set()
        for vanished, reward, before, after, _ in events:
            signs = [1 if name.endswith(good) else -1 for name in vanished]
            kinds.update(signs)
            assert reward == pytest.approx(sum(signs) + LIVING), (vanished, reward)
            assert all(("Good" in name) == (s > 0) for name, s in zip(vanished, signs))
            if all(s > 0 for s in signs):
                assert after == min(100, before + 25 * len(signs)), (before, after)
            elif all(s < 0 for s in signs):
                assert after == max(0, before - 25 * len(signs)), (before, after)
        assert kinds == {1, -1}
        assert any(after > before for _, reward, before, after, _ in events if reward > 0)
        assert events[-1][4]["good_pickups"] >= 2 and events[-1][4]["bad_pickups"] >= 1
    finally:
        env.close()


@pytest.mark.parametrize("want", ["match", "other"])
def test_delay_choice_ends_the_episode(want: str) -> None:
    env = ProbeEnv(variant="delay", delay_tics=100, seed=0)
    try:
        info = env.reset()[1]
        look = MATCHING_LOOK[info["pillar"]]
        if want == "other":
            look = "Blue" if look == "Green" else "Green"
        for _ in range(300):
            action = steer(env, lambda n: n.startswith("TwoColorsChoice") and n.endswith(look))
            _, reward, terminated, truncated, info = env.step(action)
            if info["good_pickups"] or info["bad_pickups"] or terminated or truncated:
                break
        assert terminated and not truncated and info["survival_steps"] > 100
        assert (info["good_pickups"], info["bad_pickups"]) == ((1, 0) if want == "match"
                                                               else (0, 1))
        assert reward == pytest.approx(5.0 if want == "match" else 0.0)
    finally:
        env.close()


def test_floor_drains_about_one_hp_per_step() -> None:
    env = TwoColorsEnv(seed=0, timeout_steps=60)
    try:
        start = env.reset()[1]["health"]
        for _ in range(48):
            info = env.step(LEFT)[4]  # turning in place: no move, no pickup
        assert info["good_pickups"] == info["bad_pickups"] == 0
        assert 0.8 <= (start - info["health"]) / 48 <= 1.2, (start, info["health"])
    finally:
        env.close()


def test_without_floor_damage_the_timeout_truncates_exactly() -> None:
    env = TwoColorsEnv(seed=0, floor_damage=False, timeout_steps=37)
    try:
        assert env.reset()[1]["health"] == 100
        for step in range(1, 38):
            obs, _, terminated, truncated, info = env.step(LEFT)
            assert not terminated and truncated == (step == 37)
        assert info["health"] == 100 and info["survival_steps"] == 37
        assert info["episode_return"] == pytest.approx(37 * LIVING)
        assert not obs.any()  # the documented end-of-episode observation
        with pytest.raises(RuntimeError):
            env.step(LEFT)
    finally:
        env.close()


def test_same_seed_same_first_frame_and_colour() -> None:
    a, b = TwoColorsEnv(seed=11), TwoColorsEnv(seed=11)
    try:
        obs_a, info_a = a.reset()
        obs_b, info_b = b.reset()
        assert info_a["pillar"] == info_b["pillar"] and np.array_equal(obs_a, obs_b)
        # The follow-up seeds come from the same Generator, so episode 2 repeats too.
        assert np.array_equal(a.reset()[0], b.reset()[0])
        obs_c, info_c = a.reset(seed=11)
        assert info_c["pillar"] == info_a["pillar"] and np.array_equal(obs_c, obs_a)
        firsts = {a.reset(seed=s)[0].tobytes() for s in range(4)}
        assert len(firsts) > 1
    finally:
        a.close()
        b.close()


def test_counters_wrap_so_long_episodes_count_every_pickup() -> None:
    """Ammo stocks are capped (50 shells); the DECORATE wraps its counters and the env reads
    them modulo the wrap, so more than 40 pickups of one kind still count one by one."""
    env = ProbeEnv(seed=0, floor_damage=False, timeout_steps=3000)
    try:
        good = MATCHING_LOOK[env.reset()[1]["pillar"]]
        signed = 0
        done = False
        while not done:
            _, reward, terminated, truncated, info = env.step(
                steer(env, lambda n: n.endswith(good) and "Pillar" not in n))
            signed += round(reward - LIVING)
            done = terminated or truncated
        assert info["good_pickups"] > COUNTER_WRAP_AT
        assert signed == info["good_pickups"] - info["bad_pickups"]
    finally:
        env.close()


def test_cli_scenario_and_bench_env(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main
    from tasks.two_colors.scenario import scenario_bytes

    out = tmp_path / "hard.wad"
    assert main(["scenario", "two-colors", "--out", str(out), "--variant", "hard",
                 "--seed", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.read_bytes() == scenario_bytes("hard") and summary["seed"] == 4
    assert main(["bench", "env", "--steps", "40", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["agent_steps"] == 40 and result["frame_skip"] == 2
    assert result["frames_per_s_wall"] == pytest.approx(2 * result["steps_per_s_wall"], rel=1e-3)
    assert main(["bench", "env", "--env", "tmaze", "--steps", "200"]) == 0
    assert "agent steps/s" in capsys.readouterr().out


def test_bench_env_reports_what_a_weighted_policy_picks_up(
        capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    # the damaging floor ends a random episode near step 95, so 400 steps end a few
    assert main(["bench", "env", "--steps", "400", "--action-weights",
                 "1,1,4,0.25,2,0.25,2,0.25", "--hold", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["hold"] == 3 and result["action_weights"][2] == 4.0
    assert result["episodes_ended"] >= 2
    assert result["mean_return"] > 0 and result["pickups_per_episode"] >= 0
    with pytest.raises(SystemExit, match="need 8"):
        main(["bench", "env", "--steps", "10", "--action-weights", "1,2"])
    with pytest.raises(SystemExit, match="--action-weights"):
        main(["bench", "env", "--steps", "10", "--action-weights", "1,x"])
