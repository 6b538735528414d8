"""Reinforcement learning on top of the memory: PPO and the policy networks."""
