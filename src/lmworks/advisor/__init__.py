"""Robo-advisor: reinforcement-learning allocation agents fitted to a client's risk profile.

:mod:`.prices` reads and checks a price table; :mod:`.env` is the gymnasium environment
(no look-ahead, trading costs, a risk-penalised reward); :mod:`.agents` trains PPO and DQN
(stable-baselines3); :mod:`.backtest` judges them walk-forward against skfolio's baselines
(:mod:`.strategies`) after costs; :mod:`.advisor` trains agents for every profile and
answers "what now?"; :mod:`.profile` maps a client's answers to a profile.

Optional dependencies: ``pip install 'lmworks[advisor]'``.
"""

from .prices import Prices, check_prices, read_prices
from .profile import QUESTIONS, RiskProfile, profile_from_answers, risk_aversion

__all__ = ["QUESTIONS", "Prices", "RiskProfile", "check_prices", "profile_from_answers", "read_prices",
           "risk_aversion"]
