"""A client's tolerance for risk: a named profile, a numeric risk aversion, or a short questionnaire.

The agent maximises ``net log return - risk_aversion / 2 * sum of squared daily returns``,
a per-period estimate of ``E[r] - lambda / 2 Var[r]``. For a stock portfolio with about
10 % expected return and 20 % volatility the mean-variance optimal share in stocks is
``0.10 / (lambda * 0.04)``: about 100 % at lambda 1, 80 % at 3 and 30 % at 8, the
equity shares advisers typically give aggressive, moderate and conservative clients.

The objective alone did not tailor risk out of sample (``docs/research-log/benchmarks-history.md``): the
penalty's pull between neighbouring profiles is small against a month's noise, so all
three agents ended near the same low-volatility allocations. A profile therefore also
sets the agent's *band*: the share of the portfolio it may hold in assets, the rest in
cash. That is how advisers split the job: the profile fixes the strategic stock share
(30 / 60 / 90 %), and tactical choices move within a range around it; here the agent
makes the tactical choices (which allocation, where in the band), learnt from the
profile's objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..modes import Mode


class RiskProfile(Mode):
    """The three profiles an adviser assigns."""

    __what__ = "risk profile"
    CONSERVATIVE = "conservative"
    MODERATE = "moderate"
    AGGRESSIVE = "aggressive"


RISK_AVERSION = {RiskProfile.CONSERVATIVE: 8.0, RiskProfile.MODERATE: 3.0, RiskProfile.AGGRESSIVE: 1.0}

#: ``(lowest, highest)`` share of the portfolio in assets (the rest in cash) an agent may choose: the
#: strategic stock share of each profile (30 / 60 / 90 %) plus or minus 15 points, capped at 100 %.
EQUITY_BAND = {RiskProfile.CONSERVATIVE: (0.15, 0.45), RiskProfile.MODERATE: (0.45, 0.75),
               RiskProfile.AGGRESSIVE: (0.75, 1.0)}
#: The band when no profile constrains the agent: anything from all cash to fully invested.
FULL_BAND = (0.0, 1.0)


def risk_aversion(risk: str | float | RiskProfile) -> float:
    """The risk aversion of a profile name, or a number given by an expert (must be > 0)."""
    if isinstance(risk, (int, float)) and not isinstance(risk, bool):
        value = float(risk)
    else:
        try:
            value = float(str(risk))
        except ValueError:
            return RISK_AVERSION[RiskProfile.parse(risk)]
    if value <= 0:
        raise ConfigError(f"risk aversion must be > 0, got {value}")
    return value


def equity_band(risk: str | RiskProfile) -> tuple[float, float]:
    """The ``(lowest, highest)`` share in assets a profile's agent may hold."""
    return EQUITY_BAND[RiskProfile.parse(risk)]


def nearest_profile(value: float, trained: list[str]) -> str:
    """The trained profile whose risk aversion is closest to ``value`` (on a log scale)."""
    import math

    return min(trained, key=lambda p: abs(math.log(RISK_AVERSION[RiskProfile.parse(p)]) - math.log(value)))


@dataclass(frozen=True)
class Question:
    """One questionnaire item: its key, the question, and the answers with their points."""

    key: str
    text: str
    answers: tuple[tuple[str, int], ...]


QUESTIONS = (
    Question("horizon", "When will you need most of this money?",
             (("within 3 years", 0), ("in 3 to 10 years", 2), ("in more than 10 years", 4))),
    Question("fall", "Your investments lose 20 % in a few weeks. What do you do?",
             (("sell everything", 0), ("sell some", 1), ("hold on", 3), ("buy more", 4))),
    Question("income", "How stable is your income?",
             (("uncertain", 0), ("fairly stable", 1), ("very stable", 2))),
    Question("savings", "What share of your savings is this?",
             (("more than half", 0), ("a quarter to a half", 1), ("less than a quarter", 2))),
    Question("experience", "How much have you invested in shares before?",
             (("never", 0), ("a little", 1), ("for years", 2))),
)
#: Total points at or below which a client is conservative, then moderate; above: aggressive.
CUTS = (5, 10)


def profile_from_answers(answers: dict[str, int]) -> dict[str, Any]:
    """Score answers (question key -> 0-based answer index); return the profile, its points and risk aversion."""
    points = 0
    for question in QUESTIONS:
        if question.key not in answers:
            raise ConfigError(f"answer missing for {question.key!r}: {question.text}")
        index = answers[question.key]
        if not 0 <= index < len(question.answers):
            raise ConfigError(f"answer {index} for {question.key!r} must be 0..{len(question.answers) - 1}")
        points += question.answers[index][1]
    unknown = sorted(set(answers) - {q.key for q in QUESTIONS})
    if unknown:
        raise ConfigError(f"unknown question(s): {', '.join(unknown)}")
    profile = RiskProfile.CONSERVATIVE if points <= CUTS[0] else (
        RiskProfile.MODERATE if points <= CUTS[1] else RiskProfile.AGGRESSIVE)
    return {"profile": profile.value, "points": points, "risk_aversion": RISK_AVERSION[profile],
            "max_points": sum(max(p for _, p in q.answers) for q in QUESTIONS)}
