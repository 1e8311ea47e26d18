"""The advisor's accounting and evaluation as a quant would check them, on hand-computed cases.

Each test names one rule of issue 35: every day rewarded once, costs on the assets traded,
one continuous portfolio, execution lag, the cash rate and excess-return Sharpe, no
look-ahead anywhere in the pipeline, intervals on every number, and universes that change.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("skfolio")

from test_advisor import TINY, synthetic_prices  # noqa: E402

from lmworks.advisor.backtest import BacktestConfig, backtest, run_window, walk_forward  # noqa: E402
from lmworks.advisor.env import AllocationEnv, Market, action_weights  # noqa: E402
from lmworks.advisor.features import LOOKBACK, Scaler  # noqa: E402
from lmworks.advisor.metrics import DAYS, performance, sharpe  # noqa: E402
from lmworks.advisor.portfolio import rebalance, run_strategy  # noqa: E402
from lmworks.advisor.prices import check_prices, read_prices  # noqa: E402
from lmworks.advisor.uncertainty import deflated_sharpe, intervals, stationary_indices  # noqa: E402
from lmworks.errors import ConfigError, DataError  # noqa: E402


@pytest.fixture(scope="module")
def prices():
    return check_prices(synthetic_prices(), source="synthetic")


# -- 1. every day rewarded exactly once ------------------------------------------------------------------------------


@pytest.mark.parametrize("rebalance_days", [21, 5, 63])
def test_every_day_of_an_episode_is_rewarded_exactly_once_across_year_ends(prices, rebalance_days):
    market = Market(prices, rebalance_days)
    # the year-end grid: the decision before a new year comes fewer than rebalance_days before the next one
    short = np.flatnonzero(np.diff(market.decisions) < rebalance_days)
    assert len(short) >= 3
    scaler = Scaler.fit(market.features, slice(LOOKBACK, 1200))
    env = AllocationEnv(market, scaler, risk_aversion=3.0, start=LOOKBACK, end=1500, episode_steps=10_000)
    env.reset(seed=0, options={"position": 0})
    covered, rewards, done = [], [], False
    while not done:
        _, reward, done, truncated, info = env.step(env.action_space.sample())
        covered.append(info["days"])
        rewards.append(reward)
        done = done or truncated
    days = np.concatenate([np.arange(a, b) for a, b in covered])
    assert len(days) == len(set(days.tolist()))  # no day twice
    assert days.tolist() == list(range(covered[0][0], covered[-1][1]))  # and none left out
    assert all(b == a2 for (_, b), (a2, _) in zip(covered, covered[1:]))  # each period ends at the next decision
    assert covered[-1][1] <= 1500  # never past the training range


# -- 2. costs, one portfolio, execution lag ---------------------------------------------------------------------------


def test_execution_lag_keeps_the_old_weights_one_day_then_trades():
    returns = np.array([[0.10, 0.0, 0.0], [0.0, 0.20, 0.0], [0.0, 0.0, 0.0]])  # two assets, then cash
    before, target = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    lagged = rebalance(target, before, returns, cost_bps=10, lag=1)
    # day 1 still in asset 0 (+10 %), then all of it moves to asset 1: turnover 2 x 1.0 = 2.0 -> 0.2 %
    assert lagged.turnover == pytest.approx(2.0) and lagged.cost == pytest.approx(0.002)
    np.testing.assert_allclose(lagged.daily, [0.10, (1 - 0.002) * 1.20 - 1, 0.0])
    now = rebalance(target, before, returns, cost_bps=10, lag=0)
    np.testing.assert_allclose(now.daily, [(1 - 0.002) * 1.0 - 1, 0.20, 0.0])
    from_cash = rebalance(np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.0, 1.0]), returns, cost_bps=10)
    assert from_cash.turnover == pytest.approx(1.0)  # cash to 1/N trades the portfolio once, not twice


def test_one_continuous_portfolio_pays_only_for_drift_after_the_first_trade():
    rng = np.random.default_rng(0)
    returns = np.c_[rng.normal(0, 0.01, (60, 2)), np.zeros(60)]
    rows = np.array([0, 20, 40])
    half = lambda k, row, w: np.array([0.5, 0.5, 0.0])  # noqa: E731
    first = run_strategy(half, returns, rows[:2], 40, 10)
    second = run_strategy(half, returns, rows[2:], 60, 10, start=first.end_weights)
    fresh = run_strategy(half, returns, rows[2:], 60, 10)
    drift = np.abs(first.end_weights[:-1] - 0.5).sum()
    assert second.turnover == pytest.approx(drift) and drift < 0.1
    assert fresh.turnover == pytest.approx(1.0)  # what every test year used to pay: re-entry from cash


def test_equal_weight_turnover_in_a_backtest_is_what_drift_costs(prices):
    config = BacktestConfig(test_years=2, seeds=(0,), profiles=("moderate",), agents=("dqn",), agent=TINY)
    result = backtest(prices, config, progress=False)
    years = [w["strategies"]["equal_weight"]["turnover"] for w in result.summary["windows"]]
    # The first test year buys in from cash once (1.0) and trades drift back to 1/N; the second carries the
    # portfolio and trades the drift only (0.6 a year here: four assets of 10-40 % volatility, monthly).
    assert years[1] < 1.0 < years[0] and years[0] - years[1] > 0.6


# -- 3. cash that earns, Sharpe on the excess -------------------------------------------------------------------------


def test_cash_earns_its_rate_and_sharpe_is_on_the_excess(prices, tmp_path):
    market = Market(prices, cash_rate=0.04)
    np.testing.assert_allclose(market.returns[:, -1], 1.04 ** (1 / DAYS) - 1)
    cash_only = market.returns[:500, -1]
    assert performance(cash_only, risk_free=cash_only)["sharpe"] == 0.0
    assert performance(cash_only)["annual_return"] == pytest.approx(0.04, rel=1e-9)
    # a fixed fraction of a portfolio plus cash no longer keeps the portfolio's Sharpe once cash earns a rate
    r = np.random.default_rng(1).normal(0.0004, 0.01, 2000)
    rf = np.full(2000, 1.04 ** (1 / DAYS) - 1)
    assert sharpe(0.3 * r + 0.7 * rf, rf) == pytest.approx(sharpe(r, rf), rel=1e-9)  # on the excess, it does
    assert sharpe(0.3 * r + 0.7 * rf) > sharpe(r) + 0.5  # on raw returns, cash looked like free Sharpe
    frame = synthetic_prices(years=1)
    frame["tbill"] = np.linspace(0.01, 0.05, len(frame))
    frame.to_csv(tmp_path / "p.csv")
    loaded = read_prices(tmp_path / "p.csv", rate_column="tbill")
    assert loaded.assets == ["A0", "A1", "A2", "A3"]
    np.testing.assert_allclose(Market(loaded).returns[:, -1], (1 + frame["tbill"].to_numpy()[:-1]) ** (1 / DAYS) - 1)
    frame["tbill"] *= 100
    frame.to_csv(tmp_path / "pct.csv")
    with pytest.raises(DataError, match="rates are annual fractions"):
        read_prices(tmp_path / "pct.csv", rate_column="tbill")
    with pytest.raises(DataError, match="cash rate column 'rate' not found"):
        read_prices(tmp_path / "p.csv", rate_column="rate")


# -- 4. no look-ahead over the whole pipeline -------------------------------------------------------------------------


def test_changing_every_price_from_a_test_year_on_changes_nothing_decided_before_it(prices):
    config = BacktestConfig(test_years=2, seeds=(0,), profiles=("moderate",), agent=TINY, anchors=(0.0, 0.5, 1.0))
    market = Market(prices)
    window = walk_forward(market, 2)[-1]
    first_day = prices.dates[window.test_start + 1]
    assert first_day == prices.dates[prices.dates.year == window.test_year][0]
    frame = prices.frame.copy()
    later = frame.index >= first_day
    frame.loc[later] *= np.random.default_rng(5).uniform(0.3, 3.0, size=frame.loc[later].shape)
    altered = Market(check_prices(frame, source="altered"))
    assert not np.allclose(market.returns[window.test_start:], altered.returns[window.test_start:])
    runs = {}
    for name, m in (("real", market), ("altered", altered)):
        scaler = Scaler.fit(m.features, slice(LOOKBACK, window.validation_start))
        runs[name] = (scaler, *run_window(m, walk_forward(m, 2)[-1], config))
    (s1, r1, a1), (s2, r2, a2) = runs["real"], runs["altered"]
    assert s1 == s2  # the scaler
    assert a1 == a2  # the validation year's choices (anchors; the checkpoint is chosen the same way, below)
    for name in r1:  # the first decision of the window, for every strategy
        np.testing.assert_array_equal(r1[name][0].targets[0], r2[name][0].targets[0])
    assert any(not np.allclose(r1[n][0].daily, r2[n][0].daily) for n in r1)  # the test year itself did change
    # and every earlier window's results are unchanged, checkpoints included (same validation utility)
    one = backtest(prices, config, progress=False).summary["windows"][0]
    two = backtest(check_prices(frame, source="altered"), config, progress=False).summary["windows"][0]
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)


def test_train_until_answers_that_date_out_of_sample(prices, tmp_path):
    from lmworks.cli import main

    path = tmp_path / "prices.csv"
    prices.frame.rename_axis("date").to_csv(path)
    out = tmp_path / "adv"
    assert main(["advisor", "train", str(path), "--until", "2020-03-31", "--timesteps", "520", "--quiet",
                 "--output", str(out), "--json", str(tmp_path / "t.json")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["trained_until"] == "2020-03-31"
    assert main(["advisor", "allocate", str(out), "--as-of", "2020-03-31", "--json", str(tmp_path / "a.json")]) == 0
    assert main(["advisor", "allocate", str(out), "--as-of", "2020-09-30", "--prices", str(path), "--json",
                 str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["as_of"] == "2020-09-30"
    assert main(["advisor", "allocate", str(out), "--as-of", "2019-12-31", "--prices", str(path)]) == 1


# -- 5. intervals on every number -------------------------------------------------------------------------------------


def test_stationary_bootstrap_blocks_and_sharpe_intervals_have_the_textbook_width():
    rng = np.random.default_rng(0)
    idx = stationary_indices(1000, 200, rng)
    assert idx.min() >= 0 and idx.max() < 1000
    continues = (np.diff(idx, axis=1) % 1000) == 1
    mean_block = 1 / (1 - continues.mean())
    assert 8 < mean_block < 12  # ~ 1000 ** (1/3) = 10, with chance continuations
    years, sr = 5, 0.5
    daily = rng.normal(sr / np.sqrt(DAYS) * 0.01, 0.01, DAYS * years)
    out = intervals({"a": [daily]}, np.zeros(len(daily)), {}, draws=1000)
    low, high = out["a"]["sharpe_ci"]
    width = (high - low) / (2 * 1.96)
    assert width == pytest.approx(np.sqrt((1 + sr ** 2 / 2) / years), rel=0.2)  # Lo (2002)
    assert low < sharpe(daily) < high


def test_paired_difference_of_a_strategy_and_a_scaled_copy_is_exact():
    rng = np.random.default_rng(2)
    market = rng.normal(0.0003, 0.01, 1000)
    out = intervals({"a": [market], "b": [market * 0.5], "c": [market + rng.normal(0, 0.01, 1000)]},
                    np.zeros(1000), {"b": ["a"], "c": ["a"]}, draws=500)
    same = out["b"]["sharpe_diff_vs_a"]  # a scaled copy has the same Sharpe on every resample
    assert same["value"] == pytest.approx(0.0, abs=1e-9) and same["ci"] == pytest.approx([0.0, 0.0], abs=1e-9)
    noisy = out["c"]["sharpe_diff_vs_a"]
    assert noisy["ci"][0] < noisy["value"] < noisy["ci"][1] and noisy["ci"][1] - noisy["ci"][0] > 0.2


def test_deflated_sharpe_falls_with_the_configurations_tried():
    rng = np.random.default_rng(3)
    excess = rng.normal(0.0005, 0.01, 1260)
    one = deflated_sharpe(excess, 1, 0.0)
    many = deflated_sharpe(excess, 100, (0.5 / np.sqrt(DAYS)) ** 2)
    z = excess.mean() / excess.std(ddof=1) * np.sqrt(1259)
    assert one == pytest.approx(0.5 * (1 + __import__("math").erf(z / np.sqrt(2))), abs=0.02)
    assert many < one


def test_backtest_json_carries_intervals_and_paired_differences(prices, tmp_path):
    config = BacktestConfig(test_years=1, seeds=(0, 1), profiles=("conservative",), agent=TINY, cash_rate=0.03)
    result = backtest(prices, config, progress=False)
    strategies = result.summary["strategies"]
    for name, m in strategies.items():
        for key in ("sharpe", "annual_return", "annual_volatility", "max_drawdown"):
            low, high = m[f"{key}_ci"]
            assert low <= high
        assert 0.0 <= m["deflated_sharpe"] <= 1.0
        if name != "equal_weight":
            assert set(m["sharpe_diff_vs_equal_weight"]) == {"value", "ci"}
    agent = strategies["ppo_conservative"]
    assert set(agent["sharpe_diff_vs_strategic_conservative"]) == {"value", "ci"}
    assert agent["sharpe_diff_vs_equal_weight"]["value"] == pytest.approx(
        agent["sharpe"] - strategies["equal_weight"]["sharpe"])
    assert result.summary["cash_rate"]["annual_mean"] == pytest.approx(0.03)
    from lmworks.advisor.report import write_report

    page = write_report(result, tmp_path / "r.html").read_text()
    assert "95 %" in page and "Sharpe - 1/N" in page and "deflated Sharpe" in page


# -- 6. universes that change -----------------------------------------------------------------------------------------


def test_an_asset_that_lists_and_one_that_delists_are_held_only_while_they_trade(tmp_path):
    frame = synthetic_prices(years=6, assets=5, seed=4)
    listing, delisting = frame.index[700], frame.index[1100]
    frame.loc[frame.index < listing, "A3"] = np.nan  # lists at row 700
    frame.loc[frame.index > delisting, "A4"] = np.nan  # delists after row 1100
    path = tmp_path / "universe.csv"
    frame.to_csv(path)
    prices = read_prices(path)
    market = Market(prices)
    a3, a4 = prices.assets.index("A3"), prices.assets.index("A4")
    assert not market.eligible[:700 + 252, a3].any() and market.eligible[700 + 252:, a3].all()
    assert market.eligible[252:1101, a4].all() and not market.eligible[1101:, a4].any()
    for name, weights in market.menu_weights().items():  # every rule, baselines included
        rows = market.decisions
        assert (weights[~market.eligible[rows, a3], a3] == 0).all(), name
        assert (weights[~market.eligible[rows, a4], a4] == 0).all(), name
        np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert action_weights(np.ones(6), eligible=market.eligible[1200])[a4] == 0.0  # the agents' weights too
    config = BacktestConfig(test_years=3, seeds=(0,), profiles=("moderate",), agent=TINY)
    result = backtest(prices, config, progress=False)
    assert all(np.isfinite(v["sharpe"]) for v in result.summary["strategies"].values())
    windows = walk_forward(market, 3)
    held = run_window(market, windows[-1], config)[0]
    for name, runs in held.items():
        for target in runs[0].targets:
            assert target[a4] == 0.0, name  # long gone by the last test year
    with pytest.raises(DataError, match="has no price on .* between its first and last price"):
        check_prices(frame.assign(A0=frame["A0"].where(frame.index != frame.index[900])), source="gap")
    with pytest.raises(ConfigError, match="execution lag 30"):
        Market(prices, execution_lag=30)
