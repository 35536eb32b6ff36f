"""Learning environments over the simulation backend (issue 14).

Owns: ``testbed.gym.*`` -- registering ``testbed/Defend-v0`` with Gymnasium on import
(``env``: the single-agent defender; ``vector``: many of its episodes at once in arrays, its
``vectorization_mode="vector_entry_point"`` for ``gymnasium.make_vec``), ``parallel_env``
(``parallel``: a PettingZoo ``ParallelEnv`` with a ``defender`` and a ``worm``),
``register_rllib`` (RLlib's ``register_env``), the policies (``policies``: the built-in
responders as policies and a numpy forward pass of a trained one). Must not: be imported by the
run-time path of an emulated run except ``testbed.gym.policies`` (numpy only), or import
training libraries at module level.

Use::

    import gymnasium, testbed.gym
    env = gymnasium.make("testbed/Defend-v0", scenario="scenarios/smb-flat.yaml")
    observation, info = env.reset(seed=0)
"""

from __future__ import annotations

from typing import Any

__all__ = ["ENV_ID", "parallel_env", "register_rllib"]

ENV_ID = "testbed/Defend-v0"

try:
    import gymnasium
except ImportError:  # the numpy policy runtime (testbed.gym.policies) needs no gymnasium
    gymnasium = None  # type: ignore[assignment]

if gymnasium is not None and ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="testbed.gym.env:DefendEnv",
                       vector_entry_point="testbed.gym.vector:DefendVectorEnv")


def parallel_env(scenario: Any = "scenarios/smb-flat.yaml", **kwargs: Any) -> Any:
    """The PettingZoo ``ParallelEnv`` (agents ``defender`` and ``worm``); see
    ``testbed.gym.parallel``."""
    from testbed.gym.parallel import DefendAttackEnv

    return DefendAttackEnv(scenario, **kwargs)


def register_rllib(name: str = ENV_ID) -> str:
    """Register ``testbed/Defend-v0`` with RLlib (``ray.tune.registry.register_env``) under
    ``name``; the env config is passed to ``DefendEnv`` as keyword arguments. Returns ``name``
    for ``PPOConfig().environment(name, env_config={"scenario": ...})``."""
    from ray.tune.registry import register_env

    from testbed.gym.env import DefendEnv

    register_env(name, lambda config: DefendEnv(**dict(config)))
    return name
