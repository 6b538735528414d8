"""The task interface: everything a role may ask of a task, with the defaults most tasks keep.

A role builds the run's task once with :func:`tasks.registry.task_for` and then asks it::

    task = task_for(config)                          # checks the task's config fields too
    env = task.make_env(slot, data_policy)           # actor: a gymnasium env per slot
    x = task.step_inputs(obs, prev_a, prev_r)        # actor: memory inputs of one step of B envs
    inputs, queries, labels = task.encode(obs, a, r) # scorer, learner: whole episodes
    nets = task.networks(config)                     # memory + predictor (MemUP)
    policy = task.policy(config)                     # PPO heads or the PPO-LSTM baseline
    task.succeeded(final_reward, steps, total)       # actor, learner: the run's success rate
    task.hits(labels, surprise)                      # scorer: the detector's accuracy

``labels`` are :meth:`Task.outcomes`, what MemUP predicts at each step (the reward unless a
task says otherwise). Vector tasks encode steps as float32 rows (:mod:`memup.encoding`),
image tasks as uint8 records (:mod:`tasks.frames`). Optional extras have defaults that do
nothing: :meth:`Task.rollout_stats` (what PPO logs beside the return) and
:meth:`Task.episode_stats` (what ``memup eval`` reports per episode), the benchmarks'
:attr:`Task.bench_config` and :meth:`Task.bench_episodes`, and :meth:`Task.memory_probe`
(``memup probe``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from torch import nn

from common.config import ClusterConfig, ConfigError, action_weights
from memup.encoding import encode_steps, step_inputs
from memup.networks import TaskNets
from rl.policy import LstmPolicy, PolicyHeads
from tasks.frame_heads import FrameHeads
from tasks.frames import FrameEncoder, encode_frame_steps, frame_predictor, frame_step_inputs

Encoded = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class TaskSpec:
    """What the wire carries of a task's steps.

    Attributes:
        obs_shape: shape of one observation (``(C, H, W)`` for images).
        obs_dtype: its dtype name (``float32`` vectors, ``uint8`` frames).
        n_actions: size of the discrete action space.
    """

    obs_shape: tuple[int, ...]
    obs_dtype: str
    n_actions: int

    @property
    def frames(self) -> bool:
        """Observations are images (uint8 records) rather than vectors."""
        return self.obs_dtype == "uint8"

    @property
    def input_dim(self) -> int:
        """Width of a memory input row (vector tasks: ``[obs, onehot(prev_a), prev_r]``)."""
        if self.frames:
            raise ValueError("image tasks have records, not input vectors")
        return int(np.prod(self.obs_shape)) + self.n_actions + 1

    def check_obs(self, obs: np.ndarray) -> str | None:
        """Why ``[T, ...]`` observations do not fit this spec, or None when they do."""
        if obs.ndim != 1 + len(self.obs_shape) or tuple(obs.shape[1:]) != self.obs_shape:
            return f"obs {obs.shape} (want [T, {', '.join(map(str, self.obs_shape))}])"
        if obs.dtype != np.dtype(self.obs_dtype):
            return f"obs dtype {obs.dtype} (want {self.obs_dtype})"
        return None


class Task:
    """One task of the cluster; subclasses set :attr:`spec` and build env and networks.

    Args:
        config: the run's config (``config.task`` holds the task's own fields).
    """

    spec: TaskSpec
    #: phase I's random data policy plays envs unlike the policy's (actors swap their envs
    #: when the first policy arrives)
    swaps_data_envs: bool = False
    #: engine frames (tics) an env simulates per agent step: frames = steps x frame_skip
    #: (``memup bench``)
    frame_skip: int = 1
    #: the file under ``configs/`` the benchmarks (``memup bench env`` / ``pipeline``) start
    #: from, None: the config defaults; :attr:`bench_overrides` then apply, flags after them
    bench_config: str | None = None
    #: ``key=value`` overrides the benchmarks apply on :attr:`bench_config`
    bench_overrides: tuple[str, ...] = ()

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.name = config.task.env

    # -- env ------------------------------------------------------------------------------

    def make_env(self, slot: int = 0, data_policy: bool = False) -> gymnasium.Env:
        """A fresh env for actor slot ``slot``; ``data_policy``: the env phase I's random data
        policy plays (it may differ, see :attr:`swaps_data_envs`)."""
        raise NotImplementedError

    # -- steps and outcomes ---------------------------------------------------------------

    def outcomes(self, rewards: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """``[S]`` float32: what MemUP predicts at each step of concatenated episodes that
        begin at rows ``starts`` (default: the step's own reward)."""
        del starts
        return np.asarray(rewards, dtype=np.float32)

    def encode(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
               starts: np.ndarray | None = None) -> Encoded:
        """Memory inputs, predictor queries and labels (:meth:`outcomes`) of concatenated
        episodes; ``starts`` are the rows where episodes begin (default: one, at 0)."""
        first = np.array([0]) if starts is None else np.asarray(starts)
        if self.spec.frames:
            inputs, queries, _ = encode_frame_steps(obs, actions, rewards, first)
        else:
            inputs, queries, _ = encode_steps(obs, actions, rewards, self.spec.n_actions, first)
        return inputs, queries, self.outcomes(np.asarray(rewards, dtype=np.float32), first)

    def step_inputs(self, obs: np.ndarray, prev_actions: np.ndarray,
                    prev_rewards: np.ndarray) -> np.ndarray:
        """Memory inputs of one step of B envs (``prev_actions`` -1 where one starts)."""
        if self.spec.frames:
            return frame_step_inputs(obs, prev_actions, prev_rewards)
        return step_inputs(obs, prev_actions, prev_rewards, self.spec.n_actions)

    def check_obs(self, obs: np.ndarray) -> str | None:
        """Why ``[T, ...]`` observations do not fit this task, or None when they do."""
        return self.spec.check_obs(obs)

    def succeeded(self, final_reward: float, steps: int, total_return: float) -> bool:
        """Whether a finished episode counts as a success (default: never; the run then
        stops at ``ppo.max_env_steps``)."""
        del final_reward, steps, total_return
        return False

    def hits(self, labels: np.ndarray, surprise: np.ndarray) -> list[int]:
        """Right (1) / wrong (0) predictions of the steps whose outcome needs memory: by
        default every step with a nonzero outcome whose prediction lies on the outcome's
        side of zero with room to spare (``|prediction - y| < |y|``: surprise below ``y²``)."""
        picked = np.flatnonzero(labels != 0)
        return [int(s) for s in surprise[picked] < labels[picked] ** 2]

    # -- networks -------------------------------------------------------------------------

    def chrono_horizon(self, config: ClusterConfig) -> int | None:
        """``memup.chrono``: -1 is the episode length (``task.length``), 0 off."""
        chrono = config.memup.chrono
        return config.task.length if chrono == -1 else (chrono or None)

    def networks(self, config: ClusterConfig) -> TaskNets:
        """The MemUP memory and predictor of this task."""
        raise NotImplementedError

    def policy(self, config: ClusterConfig) -> nn.Module:
        """Heads on the memory output (frozen / joint) or the PPO-LSTM baseline (lstm),
        starting at ``ppo.action_prior`` when it is set.

        Raises:
            ConfigError: ``ppo.action_prior`` has not one weight per action of the task.
        """
        policy = self.policy_network(config)
        prior = action_weights(config.ppo.action_prior, "ppo.action_prior")
        if prior:
            heads = policy if isinstance(policy, PolicyHeads) else policy.heads
            try:
                heads.set_action_prior(prior)  # type: ignore[operator]
            except ValueError as error:
                raise ConfigError(f"ppo.action_prior: {error}") from None
        return policy

    def policy_network(self, config: ClusterConfig) -> nn.Module:
        """The policy network of ``config.ppo.mode`` at its default initialisation."""
        spec, p, m = self.spec, config.ppo, config.memup
        if p.mode == "lstm":
            if spec.frames:  # the baseline gets a CNN of the memory's shape, trained by PPO
                encoder = FrameEncoder(spec.obs_shape, spec.n_actions, "input",  # type: ignore[arg-type]
                                       m.cnn)
                return LstmPolicy(encoder.out_dim, spec.n_actions, tbptt=p.tbptt,
                                  encoder=encoder)
            return LstmPolicy(spec.input_dim, spec.n_actions, tbptt=p.tbptt)
        if spec.frames and p.frame_features:
            # The outcome model has the predictor's shape; the learner loads phase I's.
            outcome_model = frame_predictor(
                m.hidden, spec.obs_shape, spec.n_actions, m.cnn,  # type: ignore[arg-type]
                m.interaction, m.reconstruction > 0) if p.outcome_features else None
            return FrameHeads(m.hidden, spec.obs_shape, spec.n_actions,  # type: ignore[arg-type]
                              hidden=p.hidden, cnn=m.cnn, interaction=p.interaction,
                              outcome_model=outcome_model)
        return PolicyHeads(m.hidden, spec.n_actions, hidden=p.hidden)

    # -- config ---------------------------------------------------------------------------

    def check(self, config: ClusterConfig) -> None:
        """Raises :class:`ConfigError` for a value this task cannot use, naming the key."""
        m, p = config.memup, config.ppo
        image = self.spec.frames
        if m.reconstruction > 0 and not image:
            raise ConfigError(f"memup.reconstruction {m.reconstruction}: only image tasks "
                              f"have frames to reconstruct ({self.name!r} has none); set it "
                              f"to 0")
        if (m.query_shift or m.predictor_dropout) and not image:
            raise ConfigError(f"memup.query_shift {m.query_shift} / memup.predictor_dropout "
                              f"{m.predictor_dropout}: only the image predictor has them "
                              f"({self.name!r} is not an image task); set both to 0")
        if (p.init_encoder or p.interaction) and not (
                p.frame_features and p.mode != "lstm" and image):
            raise ConfigError("ppo.init_encoder / ppo.interaction shape the frame CNN of the "
                              "policy heads: set ppo.frame_features = true (image tasks, "
                              "frozen or joint mode)")
        if p.outcome_features and not (p.frame_features and p.mode == "frozen" and image):
            raise ConfigError("ppo.outcome_features reads phase I's frozen predictor beside "
                              "the frame CNN: it needs ppo.frame_features = true, ppo.mode = "
                              "\"frozen\" and an image task")

    # -- extras ---------------------------------------------------------------------------

    def rollout_stats(self, rewards: np.ndarray) -> dict[str, Any]:
        """Task measures of a PPO batch's concatenated rewards, logged beside its return."""
        del rewards
        return {}

    def episode_stats(self, info: dict[str, Any]) -> dict[str, Any]:
        """Task measures of one evaluated episode from its env's final ``info``."""
        del info
        return {}

    def bench_conditions(self) -> dict[str, Any]:
        """What ``memup bench env`` reports of the env beside length and frame skip."""
        return {}

    def bench_episodes(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        """Task measures of the episodes ``memup bench env``'s random policy ended, from
        their final ``info``s (None where no episode ended)."""
        del infos
        return {}

    def memory_probe(self) -> Callable[[Any, ClusterConfig, dict[str, Any]], int] | None:
        """``memup probe``'s probe of this task's memory, or None where it defines none:
        ``probe(args, config, state)`` gets the parsed command line, the run's config and
        its checkpoint state and returns the exit code."""
        return None
