"""The gym task: any gymnasium env with Discrete actions, named by one config line."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

from common.config import ConfigError, load_config
from tasks.base import Task
from tasks.gym.task import GymTask
from tasks.registry import TASKS, task_class, task_for
from tasks.tmaze.task import TMazeTask

HERE = __name__


class TinyEnv(gymnasium.Env):
    """``length`` steps of a fixed observation space; reward 1 when the action is 1."""

    def __init__(self, observation_space: gymnasium.Space | None = None, length: int = 6,
                 action_space: gymnasium.Space | None = None) -> None:
        self.observation_space = observation_space or spaces.Discrete(3)
        self.action_space = action_space or spaces.Discrete(2)
        self.length, self.t = length, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None
              ) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        reward = 1.0 if action == self.action_space.start + 1 else 0.0  # type: ignore[attr-defined]
        return self.observation_space.sample(), reward, self.t >= self.length, False, {}


def image_env(length: int = 6) -> TinyEnv:
    return TinyEnv(spaces.Box(0, 255, (40, 48, 3), np.uint8), length)


def multi_env() -> TinyEnv:
    return TinyEnv(spaces.MultiDiscrete([2, 3]))


def tuple_env() -> TinyEnv:
    return TinyEnv(spaces.Tuple((spaces.Discrete(2), spaces.Box(-1, 1, (2,), np.float32))))


def dict_env() -> TinyEnv:
    return TinyEnv(spaces.Dict({"view": spaces.Box(0, 255, (3, 3, 3), np.uint8),
                                "heading": spaces.Discrete(4), "mission": spaces.Text(8)}))


def shifted_env() -> TinyEnv:
    return TinyEnv(action_space=spaces.Discrete(3, start=5))


def continuous_env() -> TinyEnv:
    return TinyEnv(action_space=spaces.Box(-1, 1, (1,), np.float32))


def text_env() -> TinyEnv:
    return TinyEnv(spaces.Text(5))


def gym_task(env: str, *overrides: str) -> Task:
    return task_for(load_config(overrides=[f"task.env={env}", "memup.hidden=16",
                                           "ppo.hidden=16", *overrides], environ={}))


def test_the_registry_resolves_names_gym_ids_and_callables() -> None:
    assert task_class("tmaze") is TMazeTask
    assert set(TASKS) == {"tmaze", "two-colors"}
    assert task_class("gym:CartPole-v1") is GymTask
    assert task_class(f"{HERE}:TinyEnv") is GymTask
    with pytest.raises(ConfigError, match="gym:<id>"):
        task_class("cartpole")


def test_a_box_vector_env_gets_an_mlp_memory_and_live_inputs_match_episodes() -> None:
    task = gym_task("gym:CartPole-v1")
    assert task.spec.obs_shape == (4,) and task.spec.obs_dtype == "float32"
    assert task.spec.n_actions == 2
    env = task.make_env(0)
    obs, _ = env.reset(seed=1)
    rows, actions, rewards = [obs], [], []
    for a in (0, 1, 1):
        obs, r, *_ = env.step(a)
        actions.append(a)
        rewards.append(r)
        rows.append(obs)
    inputs, _, labels = task.encode(np.stack(rows[:3]), np.array(actions),
                                    np.array(rewards, np.float32))
    live = task.step_inputs(np.stack(rows[1:2]), np.array([0]), np.array([1.0], np.float32))
    assert np.array_equal(live[0], inputs[1])
    assert np.array_equal(labels, np.array(rewards, np.float32))  # the outcome is the reward
    nets = task.networks(load_config(overrides=["task.env=gym:CartPole-v1",
                                                 "memup.hidden=16"], environ={}))
    out, _ = nets.memory(torch.from_numpy(inputs)[None], None)
    assert out.shape == (1, 3, 16)
    assert task.chrono_horizon(task.config) == 500  # the env's own step limit


@pytest.mark.parametrize("maker, width", [("TinyEnv", 3), ("multi_env", 5), ("tuple_env", 4),
                                          ("dict_env", 31)])
def test_discrete_observations_become_one_hots(maker: str, width: int) -> None:
    task = gym_task(f"{HERE}:{maker}")
    assert task.spec.obs_shape == (width,)
    obs, _ = task.make_env(0).reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (width,)
    if maker in ("TinyEnv", "multi_env"):
        assert set(np.unique(obs)) <= {0.0, 1.0}
    if maker == "dict_env":  # a small uint8 grid is a vector; the text is left out, named
        assert task.view.dropped == ("mission",)  # type: ignore[attr-defined]


def test_images_get_a_cnn_and_travel_as_chw_frames() -> None:
    task = gym_task(f"{HERE}:image_env", "memup.cnn=small")
    assert task.spec.frames and task.spec.obs_shape == (3, 40, 48)
    obs, _ = task.make_env(0).reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (3, 40, 48)
    inputs = task.step_inputs(obs[None], np.array([-1]), np.zeros(1, np.float32))
    nets = task.networks(task.config)
    out, _ = nets.memory(torch.from_numpy(inputs)[None], None)
    assert out.shape == (1, 1, 16)
    lstm = gym_task(f"{HERE}:image_env", "ppo.mode=lstm").policy(task.config)
    assert lstm is not None


def test_actions_keep_their_offset_and_kwargs_reach_the_maker() -> None:
    task = gym_task(f"{HERE}:shifted_env")
    env = task.make_env(0)
    env.reset(seed=0)
    assert env.step(1)[1] == 1.0  # action 1 is the env's 6
    short = gym_task(f"{HERE}:TinyEnv", 'task.gym_kwargs={"length": 2}').make_env(0)
    short.reset(seed=0)
    assert not short.step(0)[2] and short.step(0)[2]


@pytest.mark.parametrize("maker, message", [
    ("continuous_env", "Discrete actions only"),
    ("text_env", "is not supported"),
    ("nothing_here", "cannot make the env"),
])
def test_what_it_cannot_run_is_a_config_error(maker: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gym_task(f"{HERE}:{maker}")


def test_success_is_a_return_and_hits_read_the_outcome_sign() -> None:
    task = gym_task(f"{HERE}:TinyEnv", "task.success_return=2")
    assert task.succeeded(0.0, 5, 2.0) and not task.succeeded(1.0, 5, 1.5)
    assert not gym_task(f"{HERE}:TinyEnv").succeeded(9.0, 1, 9.0)  # by default none does
    labels = np.array([0.0, 1.0, -1.0, 0.5], np.float32)
    surprise = np.array([5.0, 0.5, 2.0, 0.1], np.float32)
    assert task.hits(labels, surprise) == [1, 0, 1]  # zero outcomes are not asked


def test_a_gym_task_rejects_image_options_on_vectors() -> None:
    with pytest.raises(ConfigError, match="only image tasks"):
        gym_task("gym:CartPole-v1", "memup.reconstruction=1")
