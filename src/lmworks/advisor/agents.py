"""The two agent families: policy gradient (PPO) on continuous weights, Q-learning (DQN) over a menu.

Both come from stable-baselines3 (extra ``advisor``) and train on
:class:`~lmworks.advisor.env.AllocationEnv`. A run is reproducible to the last digit:
one torch thread, every generator seeded, deterministic actions when evaluating.
The checkpoint kept is the one with the best utility on a validation year inside
the training window, never on the test year.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from ..modes import Mode
from ..training.keep_best import KeepBest

LOGGER = logging.getLogger("lmworks")


class AgentKind(Mode):
    """Which agent family."""

    __what__ = "agent"
    PPO = "ppo"
    DQN = "dqn"

    @property
    def action(self) -> str:
        """The environment's action form for this family: continuous weights, or a menu choice."""
        return "weights" if self is AgentKind.PPO else "menu"


@dataclass
class AgentConfig:
    """How an agent trains.

    Attributes
    ----------
    timesteps:
        Environment steps (holding periods) of training.
    evaluations:
        How many times during training the policy is scored on the validation year;
        the best-scoring weights are kept.
    learning_rate, gamma:
        Optimiser step and discount (returns compound over weeks, not decades: 0.9).
    net:
        Hidden layer sizes of the policy / Q network.
    """

    timesteps: int = 30_000
    evaluations: int = 6
    learning_rate: float = 3e-4
    gamma: float = 0.9
    net: tuple[int, ...] = (64, 64)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {**asdict(self), "net": list(self.net)}


def require_sb3() -> Any:
    """Import stable-baselines3 or say how to install it."""
    try:
        import stable_baselines3
    except ImportError as err:
        raise ConfigError("the advisor's agents need stable-baselines3: pip install 'lmworks[advisor]'") from err
    return stable_baselines3


def make_agent(kind: AgentKind | str, env: Any, config: AgentConfig, seed: int) -> Any:
    """A fresh stable-baselines3 model on ``env``, seeded."""
    sb3 = require_sb3()
    kind = AgentKind.parse(kind)
    policy_kwargs = {"net_arch": list(config.net)}
    model = _new_model(sb3, kind, env, config, seed, policy_kwargs)
    # stable-baselines3's default logger makes a /tmp/SB3-<time> folder on every learn(); log nowhere
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def _new_model(sb3: Any, kind: AgentKind, env: Any, config: AgentConfig, seed: int, policy_kwargs: dict) -> Any:
    if kind is AgentKind.PPO:
        return sb3.PPO("MlpPolicy", env, learning_rate=config.learning_rate, gamma=config.gamma, n_steps=520,
                       batch_size=130, n_epochs=10, ent_coef=0.0, seed=seed, policy_kwargs=policy_kwargs,
                       device="cpu", verbose=0)
    return sb3.DQN("MlpPolicy", env, learning_rate=config.learning_rate * 3, gamma=config.gamma,
                   buffer_size=50_000, learning_starts=1_000, batch_size=64, train_freq=4, target_update_interval=500,
                   exploration_fraction=0.3, exploration_final_eps=0.02, seed=seed, policy_kwargs=policy_kwargs,
                   device="cpu", verbose=0)


def train_agent(kind: AgentKind | str, env: Any, config: AgentConfig, seed: int,
                validate: Callable[..., float], progress: Callable[[int, float], None] | None = None) -> Any:
    """Train, scoring on validation ``config.evaluations`` times; return the model with the best weights.

    ``validate(model) -> utility`` runs the policy deterministically over the validation
    year; ``progress(timesteps_done, utility)`` reports each evaluation.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread is as fast, and makes runs bit-identical
    try:
        model = make_agent(kind, env, config, seed)
        chunk = max(1, config.timesteps // config.evaluations)
        keeper = KeepBest()  # every evaluation runs: RL validation curves are too noisy for patience
        for done in range(chunk, config.timesteps + 1, chunk):
            model.learn(total_timesteps=chunk, reset_num_timesteps=False)
            utility = validate(model)
            if progress is not None:
                progress(done, utility)
            keeper.update(utility, model.policy.state_dict, done)
        keeper.restore(model.policy.load_state_dict)
        model.validation_utility_ = keeper.best_score
        return model
    finally:
        torch.set_num_threads(previous)


def load_agent(kind: AgentKind | str, path: str) -> Any:
    """A model saved with ``model.save(path)``."""
    sb3 = require_sb3()
    cls = sb3.PPO if AgentKind.parse(kind) is AgentKind.PPO else sb3.DQN
    return cls.load(path, device="cpu")
