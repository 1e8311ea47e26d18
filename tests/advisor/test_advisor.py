"""The robo-advisor on tiny synthetic prices: environment, no look-ahead, reproducibility, bad input, service."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("skfolio")

from lmworks.advisor.agents import AgentConfig, AgentKind  # noqa: E402
from lmworks.advisor.backtest import BacktestConfig, backtest  # noqa: E402
from lmworks.advisor.env import AllocationEnv, Market  # noqa: E402
from lmworks.advisor.features import LOOKBACK, Scaler, raw_features  # noqa: E402
from lmworks.advisor.metrics import max_drawdown, performance  # noqa: E402
from lmworks.advisor.portfolio import hold  # noqa: E402
from lmworks.advisor.prices import check_prices, read_prices  # noqa: E402
from lmworks.advisor.profile import equity_band, profile_from_answers, risk_aversion  # noqa: E402
from lmworks.errors import ConfigError, DataError  # noqa: E402

TINY = AgentConfig(timesteps=1040, evaluations=2, net=(16,))


def synthetic_prices(years: int = 7, assets: int = 4, seed: int = 0) -> pd.DataFrame:
    """Geometric random walks with different drifts and volatilities, business days from 2015."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-01", periods=261 * years)
    vols = np.linspace(0.1, 0.4, assets) / np.sqrt(252)
    drifts = np.linspace(0.02, 0.10, assets) / 252
    returns = rng.normal(drifts, vols, size=(len(dates), assets))
    frame = pd.DataFrame(100 * np.exp(np.cumsum(returns, axis=0)), index=dates,
                         columns=[f"A{i}" for i in range(assets)])
    frame.index.name = "date"
    return frame


@pytest.fixture(scope="module")
def prices():
    return check_prices(synthetic_prices(), source="synthetic")


@pytest.fixture(scope="module")
def market(prices):
    return Market(prices)


def test_holding_pays_costs_on_the_assets_traded_and_drifts():
    returns = np.array([[0.10, 0.0], [0.0, 0.0]])  # one asset, then cash
    period = hold(np.array([0.5, 0.5]), np.array([0.0, 1.0]), returns, cost_bps=10)
    # half the portfolio bought: turnover 0.5, not 1.0 (the cash leg of the trade is free)
    assert period.turnover == pytest.approx(0.5) and period.cost == pytest.approx(0.0005)
    assert period.daily[0] == pytest.approx((1 - 0.0005) * 1.05 - 1)
    np.testing.assert_allclose(period.end_weights, [0.55 / 1.05, 0.5 / 1.05])


def test_metrics_are_the_usual_ones():
    r = np.array([0.1, -0.5, 0.2])
    assert max_drawdown(r) == pytest.approx(0.5)
    m = performance(np.full(252, 0.001))
    assert m["annual_return"] == pytest.approx(1.001 ** 252 - 1) and m["annual_volatility"] == pytest.approx(0.0)
    noisy = performance(np.tile([0.01, -0.005], 126))
    assert noisy["sharpe"] == pytest.approx(np.mean([0.01, -0.005]) * 252 / (np.std(np.tile([0.01, -0.005], 126),
                                                                                      ddof=1) * np.sqrt(252)))


@pytest.mark.parametrize("action", ["weights", "menu"])
def test_environment_passes_gymnasiums_checker(market, action):
    from gymnasium.utils.env_checker import check_env

    scaler = Scaler.fit(market.features, slice(LOOKBACK, 700))
    env = AllocationEnv(market, scaler, risk_aversion=3.0, start=LOOKBACK, end=700, action=action)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    step = env.step(env.action_space.sample())
    assert obs.dtype == np.float32 and np.isfinite(step[1]) and step[4]["turnover"] > 0


@pytest.mark.parametrize("profile", ["conservative", "moderate", "aggressive"])
def test_every_action_keeps_the_share_in_assets_inside_the_profiles_band(market, profile):
    low, high = equity_band(profile)
    scaler = Scaler.fit(market.features, slice(LOOKBACK, 700))
    ppo = AllocationEnv(market, scaler, risk_aversion=3.0, start=LOOKBACK, end=700, band=(low, high))
    ppo.reset(seed=0)
    shares = []
    for action in [np.full(5, -1.0), np.full(5, 1.0), *(ppo.action_space.sample() for _ in range(50))]:
        target = ppo.target(action)
        assert (target >= 0).all() and target.sum() == pytest.approx(1.0)
        shares.append(1.0 - target[-1])
    assert shares[:2] == pytest.approx([low, high]) and low - 1e-9 <= min(shares) <= max(shares) <= high + 1e-9
    dqn = AllocationEnv(market, scaler, risk_aversion=3.0, start=LOOKBACK, end=700, band=(low, high), action="menu")
    dqn.reset(seed=0)
    targets = np.stack([dqn.target(a) for a in range(dqn.action_space.n)])
    assert np.allclose(targets.sum(axis=1), 1.0) and (targets >= 0).all()
    assert sorted(set(np.round(1.0 - targets[:, -1], 9))) == pytest.approx([low, (low + high) / 2, high])


def test_decisions_are_monthly_by_default_and_an_episode_is_a_year_of_them(prices, market):
    scaler = Scaler.fit(market.features, slice(LOOKBACK, 700))
    assert AllocationEnv(market, scaler, risk_aversion=3.0, start=LOOKBACK, end=700).episode_steps == 12
    gaps = np.diff(market.decisions)
    assert set(gaps) <= set(range(1, 22)) and np.median(gaps) == 21  # shorter only where a year starts afresh
    # each year's first decision is taken at the last close before it: its first return is the year's first day's
    years = prices.dates[market.decisions + 1].year
    assert all(prices.dates[market.decisions[years == y][0] + 1] == prices.dates[prices.dates.year == y][0]
               for y in sorted(set(years))[1:])
    weekly = Market(prices, rebalance_days=5)
    assert AllocationEnv(weekly, scaler, risk_aversion=3.0, start=LOOKBACK, end=700).episode_steps == 50


def test_features_at_t_ignore_every_later_price(prices):
    t = 600
    frame = prices.frame.copy()
    changed = frame.copy()
    changed.iloc[t + 1:] *= np.random.default_rng(3).uniform(0.5, 2.0, size=changed.iloc[t + 1:].shape)
    before, after = raw_features(frame), raw_features(changed)
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
    assert not np.allclose(before[t + 5:], after[t + 5:], equal_nan=True)


#: The close the shared advisor is trained up to: it answers for this date and later ones.
UNTIL = "2020-06-30"


@pytest.fixture(scope="module")
def advisor(prices):
    from lmworks.advisor.advisor import Advisor, AdvisorConfig

    return Advisor(AdvisorConfig(agent="dqn", training=TINY)).fit(prices, until=UNTIL, progress=False)


def test_no_look_ahead_changing_every_price_after_t_leaves_the_action_at_t(advisor, prices):
    t = advisor.prices_.dates[-1]  # the trained close; the full prices go on after it
    frame = prices.frame.copy()
    frame.loc[frame.index > t] *= 3.0
    frame.loc[frame.index > t, "A0"] *= 0.1
    altered = check_prices(frame, source="altered")
    for profile in ("conservative", "moderate", "aggressive"):
        a = advisor.allocate(as_of=str(t.date()), risk=profile, prices=prices)
        b = advisor.allocate(as_of=str(t.date()), risk=profile, prices=altered)
        assert a == b
    later = prices.dates[prices.position(t) + 50]
    assert advisor.allocate(as_of=str(later.date()), prices=altered)["features"] != \
        advisor.allocate(as_of=str(later.date()), prices=prices)["features"]


def test_allocate_refuses_a_date_its_agents_were_chosen_after(advisor, prices):
    assert advisor.prices_.dates[-1] == pd.Timestamp(UNTIL)
    with pytest.raises(ConfigError, match=r"--as-of 2020-06-29 is before this advisor's training data ends "
                                          r"\(2020-06-30\).*--until 2020-06-29"):
        advisor.allocate(as_of="2020-06-29", prices=prices)


def test_allocate_explains_and_save_load_round_trip(advisor, tmp_path):
    from lmworks.advisor.advisor import Advisor

    answer = advisor.allocate(as_of="2020-06-30", risk="conservative")
    assert answer["as_of"] == "2020-06-30" and answer["profile"] == "conservative" and answer["risk_aversion"] == 8.0
    assert sum(answer["weights"].values()) == pytest.approx(1.0, abs=1e-5) and set(answer["weights"]) == {
        "A0", "A1", "A2", "A3", "cash"}
    assert set(answer["features"]["A0"]) == {"return_5d", "return_21d", "return_63d", "return_252d",
                                             "volatility_21d", "volatility_63d"}
    assert answer["asset_share_band"] == [0.15, 0.45]
    mix = answer["strategic_mix"]
    assert mix["name"] == "equal_weight at 30%" and mix["weight"] == advisor.anchors_["conservative"]
    assert ("rule" in answer) == (mix["weight"] < 1) and answer.get("rule", "%").endswith("%")  # the agent's rule
    assert 0.15 - 1e-6 <= 1.0 - answer["weights"]["cash"] <= 0.45 + 1e-6
    latest = advisor.allocate()  # the last close: after every decision row, its rules are fitted afresh
    assert latest["as_of"] == str(advisor.prices_.dates[-1].date()) and latest["profile"] == "moderate"
    numeric = advisor.allocate(as_of="2020-06-30", risk=7.0)
    assert numeric["profile"] == "conservative" and "nearest trained profile" in numeric["note"]
    again = Advisor.load(advisor.save(tmp_path / "adv"))
    assert again.allocate(as_of="2020-06-30", risk="conservative") == answer
    with pytest.raises(ConfigError, match="outside the data"):
        advisor.allocate(as_of="1999-01-01")
    with pytest.raises(ConfigError, match="unknown risk profile 'reckless'"):
        advisor.allocate(risk="reckless")
    with pytest.raises(ConfigError, match="risk aversion must be > 0"):
        risk_aversion(-1)


def test_the_strategic_mix_is_blended_in_as_far_as_the_validation_year_says(prices, market):
    from lmworks.advisor.advisor import Advisor, AdvisorConfig
    from lmworks.advisor.backtest import choose_anchor, policy_decide
    from lmworks.advisor.strategies import at_share

    band = equity_band("conservative")
    row = int(market.decisions[-3])
    held = Advisor(AdvisorConfig(agent="ppo", training=TINY, anchors=(1.0,), profiles=("conservative",),
                                 default_risk="conservative")).fit(prices, until=str(prices.dates[row].date()),
                                                                   progress=False)
    weights = np.r_[np.zeros(market.n_weights - 1), 1.0]
    strategic = at_share(market.rules_at(row)["equal_weight"], 0.30)
    np.testing.assert_allclose(policy_decide(held.agents_["conservative"], market, held.scaler_, AgentKind.PPO,
                                             band, 1.0)(0, row, weights), strategic)
    own = policy_decide(held.agents_["conservative"], market, held.scaler_, AgentKind.PPO, band)(0, row, weights)
    half = policy_decide(held.agents_["conservative"], market, held.scaler_, AgentKind.PPO, band, 0.5)
    np.testing.assert_allclose(half(0, row, weights), (own + strategic) / 2)
    assert held.anchors_ == {"conservative": 1.0}
    answer = held.allocate(as_of=str(prices.dates[row].date()))
    assert answer["strategic_mix"] == {"name": "equal_weight at 30%", "weight": 1.0}
    assert answer["weights"]["cash"] == pytest.approx(0.70, abs=1e-6)
    # one-standard-error rule: the largest weight within one standard error of the best utility
    from types import SimpleNamespace

    checkpoint = SimpleNamespace(validation_utility_=1.0)  # weight 0's utility, known from checkpoint selection
    assert choose_anchor(checkpoint, lambda model, a: np.zeros(5), (0.0,)) == (0.0, 1.0)
    noise = np.random.default_rng(0).normal(0.0, 0.01, 250)
    clear = {0.0: noise + 0.001, 0.5: noise + 0.0005, 1.0: noise * 0.5}  # the agent ahead by ~2.5 standard errors
    assert choose_anchor(checkpoint, lambda model, a: clear[a], (1.0, 0.0, 0.5))[0] == 0.0
    slight = {0.0: noise + 0.0001, 0.5: noise * 0.75 + 0.00005, 1.0: noise * 0.5}  # ahead, inside the noise
    weight, value = choose_anchor(checkpoint, lambda model, a: slight[a], (0.0, 0.5, 1.0))
    assert weight == 1.0 and value == pytest.approx(float(slight[1.0].sum()))
    with pytest.raises(ConfigError, match="anchor weights must be"):
        AdvisorConfig(anchors=(1.5,))
    with pytest.raises(ConfigError, match="anchor weights must be"):
        BacktestConfig(anchors=())


def test_same_seed_gives_an_identical_backtest_and_names_every_strategy(prices):
    config = BacktestConfig(test_years=2, seeds=(0,), profiles=("conservative", "aggressive"), agent=TINY,
                            anchors=(0.0, 0.5, 1.0))
    first = backtest(prices, config, progress=False)
    second = backtest(prices, config, progress=False)
    assert json.dumps(first.summary, sort_keys=True) == json.dumps(second.summary, sort_keys=True)
    names = set(first.summary["strategies"])
    assert {"equal_weight", "inverse_volatility", "min_variance", "hrp"} <= names
    assert {"ppo_conservative", "ppo_aggressive", "dqn_conservative", "dqn_aggressive"} <= names
    assert {"strategic_conservative", "strategic_aggressive"} <= names  # each profile's same-risk static mix
    mix = first.summary["strategies"]["strategic_conservative"]
    assert mix["annual_volatility"] < first.summary["strategies"]["strategic_aggressive"]["annual_volatility"]
    assert [w["test_year"] for w in first.summary["windows"]] == [2020, 2021]
    for w in first.summary["windows"]:
        assert w["validation_year"] == w["test_year"] - 1 and w["train_until"] < f"{w['test_year'] - 1}-01-08"
    ew = first.summary["strategies"]["equal_weight"]
    assert {"sharpe", "annual_return", "annual_volatility", "max_drawdown", "turnover", "costs", "sortino",
            "calmar"} <= set(ew)
    assert ew["costs"] > 0 and len(first.dates) == len(first.daily["equal_weight"][0])
    for w in first.summary["windows"]:  # each agent's strategic-mix weight, per seed, chosen on validation
        assert set(w["anchor_weights"]) == {"ppo_conservative", "ppo_aggressive", "dqn_conservative",
                                            "dqn_aggressive"}
        assert all(a in (0.0, 0.5, 1.0) for seeds in w["anchor_weights"].values() for a in seeds)


def test_backtest_cli_writes_json_and_a_report(tmp_path):
    from lmworks.cli import main

    path = tmp_path / "prices.csv"
    synthetic_prices(years=6).to_csv(path)
    code = main(["advisor", "backtest", str(path), "--test-years", "1", "--seeds", "0", "--profiles", "moderate",
                 "--timesteps", "520", "--quiet", "--json", str(tmp_path / "bt.json"), "--report",
                 str(tmp_path / "bt.html")])
    assert code == 0
    summary = json.loads((tmp_path / "bt.json").read_text())
    assert "ppo_moderate" in summary["strategies"] and "equal_weight" in summary["strategies"]
    page = (tmp_path / "bt.html").read_text()
    assert "<svg" in page and "equal_weight" in page and "Sharpe" in page


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.iloc[[1, 0, *range(2, len(f))]], "dates are not sorted"),
    (lambda f: pd.concat([f.iloc[:3], f.iloc[2:3], f.iloc[3:]]), "appears more than once"),
    (lambda f: f.assign(A1=f["A1"].where(f.index != f.index[5])), "asset 'A1' has no price on 2015-01-08"),
    (lambda f: f.assign(A2=f["A2"].where(f.index != f.index[6], -1.0)), "asset 'A2' has a non-positive price"),
])
def test_bad_prices_name_the_asset_and_date(tmp_path, edit, message):
    from lmworks.cli import main

    path = tmp_path / "bad.csv"
    edit(synthetic_prices(years=1)).to_csv(path)
    with pytest.raises(DataError, match=message):
        read_prices(path)
    assert main(["advisor", "backtest", str(path), "--quiet"]) == 1


def test_forward_fill_is_explicit_and_short_history_is_refused(tmp_path):
    frame = synthetic_prices(years=1)
    frame.iloc[5, 1] = np.nan
    path = tmp_path / "gap.csv"
    frame.to_csv(path)
    with pytest.raises(DataError, match="pass --fill forward"):
        read_prices(path)
    filled = read_prices(path, fill="forward")
    assert filled.frame.iloc[5, 1] == filled.frame.iloc[4, 1]
    with pytest.raises(DataError, match="too short"):
        backtest(filled, BacktestConfig(seeds=(0,), agent=TINY), progress=False)


def test_questionnaire_maps_answers_to_profiles():
    careful = profile_from_answers({"horizon": 0, "fall": 0, "income": 0, "savings": 0, "experience": 0})
    bold = profile_from_answers({"horizon": 2, "fall": 3, "income": 2, "savings": 2, "experience": 2})
    middle = profile_from_answers({"horizon": 1, "fall": 2, "income": 1, "savings": 1, "experience": 1})
    assert (careful["profile"], middle["profile"], bold["profile"]) == ("conservative", "moderate", "aggressive")
    assert careful["risk_aversion"] > middle["risk_aversion"] > bold["risk_aversion"]
    with pytest.raises(ConfigError, match="answer missing for 'income'"):
        profile_from_answers({"horizon": 0, "fall": 0, "savings": 0, "experience": 0})


def test_allocate_service_answers_and_refuses_bad_requests(advisor):
    from fastapi.testclient import TestClient

    from lmworks.advisor.service import create_advisor_app

    with TestClient(create_advisor_app(advisor)) as client:
        r = client.post("/v1/allocate", json={"risk": "aggressive", "as_of": "2020-06-30"})
        assert r.status_code == 200 and r.json()["profile"] == "aggressive"
        offline = advisor.allocate(as_of="2020-06-30", risk="aggressive")
        assert {k: v for k, v in r.json().items() if v is not None} == json.loads(json.dumps(offline))
        assert client.post("/v1/allocate", json={"risk": "reckless"}).status_code == 422
        assert client.post("/v1/allocate", json={"as_of": "1980-01-01"}).status_code == 404  # no answer for it
        assert client.post("/v1/allocate", json={"as_of": "2020-06-29"}).status_code == 404  # before training ended
        assert client.post("/v1/allocate", json={"as_of": "June 30"}).status_code == 422
        held = client.post("/v1/allocate", json={"current_weights": {"A0": 300.0, "cash": 100.0}})  # amounts
        assert held.status_code == 200
        assert held.json() == client.post("/v1/allocate", json={"current_weights": {"A0": 0.75, "cash": 0.25}}).json()
        assert client.post("/v1/allocate", json={"current_weights": {"ZZZ": 1.0}}).status_code == 422
        assert client.post("/v1/allocate", json={"risk": ["x"]}).status_code == 422


def test_allocate_service_openapi_passes_schemathesis(advisor):
    from conftest import schemathesis_run, served
    from lmworks.advisor.service import create_advisor_app

    with served(create_advisor_app(advisor)) as url:
        schemathesis_run(url)
