"""``lmworks advisor``: reinforcement-learning allocation agents fitted to a client's risk profile."""

from __future__ import annotations

import argparse
import logging

from ..advisor.portfolio import REBALANCE_DAYS
from ..advisor.profile import EQUITY_BAND
from ..advisor.strategies import ANCHOR_WEIGHTS
from .common import (
    ADVISOR_PORT,
    STDOUT,
    ListOption,
    add_json_option,
    add_server_options,
    positive_int,
    write_json,
)

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand and its actions."""
    p = sub.add_parser(
        "advisor", help="robo-advisor: RL allocation agents per risk profile, judged walk-forward after costs",
        description="Agents learn from price history how to allocate across assets (and cash) for a client's "
        "risk profile: a policy-gradient agent (PPO) on continuous weights and a Q-learning agent (DQN) choosing "
        "among allocation rules. The profile sets the reward's risk aversion and the band the share held in "
        f"assets stays in ({_bands()}). Prices: a wide CSV/Parquet with a 'date' column and one adjusted-close column "
        "per asset ('lmworks datasets export sp500' writes one).",
    )
    s = p.add_subparsers(dest="advisor_command", metavar="ACTION", required=True)
    _register_backtest(s)
    _register_train(s)
    _register_use(s)


def _bands() -> str:
    return ", ".join(f"{profile.value} {low:.0%}-{high:.0%}" for profile, (low, high) in EQUITY_BAND.items())


def _prices(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prices", metavar="PRICES", help="date + one price column per asset (.csv/.jsonl/.parquet)")
    parser.add_argument("--fill", choices=["none", "forward"], default="none",
                        help="carry the last price over missing days (default: none, a missing price is an error)")


def _costs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cost-bps", type=float, default=10.0, help="trading cost, basis points of turnover "
                        "(default: 10)")
    parser.add_argument("--rebalance-days", type=positive_int, default=REBALANCE_DAYS,
                        help=f"trading days between decisions (default: {REBALANCE_DAYS}, monthly); a training "
                        "episode is a year of them")
    parser.add_argument("--timesteps", type=positive_int, default=30_000,
                        help="training steps per agent (default: 30000)")
    parser.add_argument("--anchors", action=ListOption, item=_anchor, default=list(ANCHOR_WEIGHTS), metavar="W,W",
                        help="candidate weights of the profile's strategic mix (1/N at the middle of its band) "
                        "blended into each agent's targets: the validation year keeps the largest weight whose "
                        "utility is within one standard error of the best, so a tactic the agent learnt is followed "
                        f"only where it beat the strategic mix by more than the noise (default: "
                        f"{','.join(f'{a:g}' for a in ANCHOR_WEIGHTS)}; 0: the agent alone)")
    parser.add_argument("--execution-lag", type=_lag, default=1, metavar="DAYS",
                        help="closes between a decision and its trade (default: 1, decide at a close and trade at "
                        "the next; 0 trades at the close the decision saw)")
    parser.add_argument("--cash-rate", default=None, metavar="RATE|COLUMN",
                        help="what cash earns: an annual rate as a fraction (0.04), or a column of PRICES holding "
                        "that rate per date, e.g. a treasury-bill yield (default: the rate 0); Sharpe and Sortino "
                        "are on returns in excess of it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _lag(text: str) -> int:
    """One ``--execution-lag``: a whole number of closes >= 0."""
    value = int(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def read_market(args: argparse.Namespace):
    """The price file, with ``--cash-rate`` as a column of it or a number: ``(prices, cash_rate or None)``."""
    from ..advisor.prices import read_prices

    rate: float | None = None
    column = None
    if args.cash_rate is not None:
        try:
            rate = float(args.cash_rate)
        except ValueError:
            column = args.cash_rate
        if rate is not None and abs(rate) > 1:
            from ..errors import ConfigError

            raise ConfigError(f"--cash-rate {args.cash_rate}: an annual rate is a fraction (0.04 for 4 %)")
    return read_prices(args.prices, fill=args.fill, rate_column=column), rate


def _anchor(text: str) -> float:
    """One ``--anchors`` weight: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be in [0, 1]")
    return value


def _register_backtest(s) -> None:
    b = s.add_parser("backtest", help="walk-forward test of the agents against skfolio's baselines",
                     description="For each of the last --test-years calendar years: train on the years before "
                     "it, choose each agent's checkpoint on the year just before it, test on it. Equal weight, "
                     "inverse volatility, minimum variance and HRP (skfolio) run on the same days with the same "
                     "costs, one continuous portfolio each across the test years. Agents are trained with every "
                     "--seeds seed: mean and spread. Every number gets a 95 % stationary-bootstrap interval, and "
                     "each Sharpe ratio a paired interval on its difference to 1/N (an agent's also to its "
                     "profile's strategic mix).")
    _prices(b)
    _costs(b)
    b.add_argument("--test-years", type=positive_int, default=5, help="last calendar years tested (default: 5)")
    b.add_argument("--seeds", action=ListOption, item=int, default=[0, 1, 2], metavar="N,N",
                   help="training seeds")
    b.add_argument("--profiles", action=ListOption, default=["conservative", "moderate", "aggressive"],
                   metavar="NAME,NAME", help="risk profiles to train agents for")
    b.add_argument("--agents", action=ListOption, default=["ppo", "dqn"], metavar="NAME,NAME",
                   help="ppo (continuous weights) and/or dqn (a choice among candidate allocations)")
    b.add_argument("--configurations-tried", type=positive_int, metavar="N",
                   help="configurations tried before settling on this one, design choices made after seeing test "
                   "years included, for the deflated Sharpe ratio (default: the strategies in this backtest, "
                   "which understates it)")
    add_json_option(b, "write the results as JSON")
    b.add_argument("--report", metavar="FILE.html|FILE.png", help="equity curves and drawdowns")
    b.set_defaults(run=run_backtest)


def _register_train(s) -> None:
    t = s.add_parser("train", help="train an agent per risk profile on all the history (or up to --until)",
                     description="Trains the agent (--agent) for every profile on all but the last year, keeping "
                     "the checkpoint that does best on the last year. --risk sets the profile 'allocate' "
                     "answers for by default. 'allocate' answers for the last trained close or later ones only: "
                     "for an earlier date, train with --until that date.")
    _prices(t)
    _costs(t)
    t.add_argument("--risk", default="moderate", help="default profile: conservative, moderate or aggressive")
    t.add_argument("--agent", choices=["dqn", "ppo"], default="dqn",
                   help="dqn chooses among allocation rules (its choice is named), ppo sets weights (default: dqn)")
    t.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    t.add_argument("--until", metavar="DATE", help="train on the prices up to this close only (ISO date), so "
                   "'allocate --as-of DATE' is answered out of sample (default: all of PRICES)")
    t.add_argument("--output", "-o", required=True, metavar="DIR", help="advisor directory to write")
    add_json_option(t, "write the validation summary as JSON (default: -)")
    t.set_defaults(run=run_train, json=STDOUT)


def _register_use(s) -> None:
    a = s.add_parser("allocate", help="target weights at a date for a profile, with the features behind them")
    a.add_argument("advisor_dir", metavar="DIR", help="an advisor directory from 'advisor train'")
    a.add_argument("--as-of", help="ISO date of the close to decide at: the last trained close or a later one in "
                   "--prices (default: the last one); an earlier date is refused, train with --until it")
    a.add_argument("--risk", help="conservative, moderate, aggressive, or a risk aversion > 0 (default: the "
                   "advisor's default profile)")
    a.add_argument("--prices", metavar="FILE", help="newer prices for the same assets (default: the stored ones)")
    add_json_option(a, "write the allocation as JSON (default: -)")
    a.set_defaults(run=run_allocate, json=STDOUT)

    q = s.add_parser("profile", help="a short questionnaire that maps a client to a risk profile",
                     description="Asks five questions (horizon, reaction to a 20 %% fall, income stability, share of "
                     "savings, experience) and prints the profile; --answers answers them non-interactively.")
    q.add_argument("--answers", action=ListOption, metavar="KEY=N,KEY=N",
                   help="e.g. horizon=2,fall=1,income=1,savings=2,experience=0 "
                   "(0-based answer numbers)")
    add_json_option(q, "write the profile as JSON (default: -)")
    q.set_defaults(run=run_profile, json=STDOUT)

    v = s.add_parser("serve", help="HTTP service: POST /v1/allocate")
    v.add_argument("advisor_dir", metavar="DIR")
    add_server_options(v, port=ADVISOR_PORT)
    v.add_argument("--api-key-env", metavar="VAR", help="require this environment variable's value as X-API-Key")
    v.set_defaults(run=run_serve)


def run_backtest(args: argparse.Namespace) -> int:
    """Walk forward and print the table."""
    from ..advisor.agents import AgentConfig
    from ..advisor.backtest import BacktestConfig, backtest

    prices, rate = read_market(args)
    config = BacktestConfig(test_years=args.test_years, cost_bps=args.cost_bps, rebalance_days=args.rebalance_days,
                            seeds=tuple(args.seeds), profiles=tuple(args.profiles),
                            agents=tuple(args.agents), agent=AgentConfig(timesteps=args.timesteps),
                            anchors=tuple(args.anchors), execution_lag=args.execution_lag, cash_rate=rate,
                            configurations_tried=args.configurations_tried)
    result = backtest(prices, config, progress=not args.quiet)
    print_table(result.summary)
    if args.json:
        write_json(args.json, result.summary)
    if args.report:
        from ..advisor.report import write_report

        print(write_report(result, args.report))
    return 0


def print_table(summary: dict) -> None:
    """One row per strategy: the headline metrics (agents: mean ± sd over seeds)."""
    period = summary.get("test_period") or ["?", "?"]
    print(f"walk-forward test {period[0]} .. {period[1]}, {summary['config']['cost_bps']:g} bps costs")
    print(f"{'strategy':<26}{'return':>9}{'vol':>8}{'Sharpe':>14}{'max DD':>9}{'Calmar':>8}{'turnover':>10}")
    for name, m in summary["strategies"].items():
        sharpe = f"{m['sharpe']:.2f}" + (f" ± {m['sharpe_std']:.2f}" if "sharpe_std" in m else "")
        print(f"{name:<26}{m['annual_return']:>+9.1%}{m['annual_volatility']:>8.1%}{sharpe:>14}"
              f"{m['max_drawdown']:>9.1%}{m['calmar']:>8.2f}{m['turnover']:>10.1f}")


def run_train(args: argparse.Namespace) -> int:
    """Train and save."""
    from ..advisor.advisor import Advisor, AdvisorConfig
    from ..advisor.agents import AgentConfig
    from ..model_dir import check_output_dir

    check_output_dir(args.output, meta_file="advisor.json")
    prices, rate = read_market(args)
    config = AdvisorConfig(agent=args.agent, default_risk=args.risk, cost_bps=args.cost_bps,
                           rebalance_days=args.rebalance_days, seed=args.seed,
                           training=AgentConfig(timesteps=args.timesteps), anchors=tuple(args.anchors),
                           execution_lag=args.execution_lag, cash_rate=rate)
    advisor = Advisor(config).fit(prices, until=args.until, progress=not args.quiet)
    advisor.save(args.output)
    write_json(args.json, {"validation_utility": advisor.validation_, "anchor_weights": advisor.anchors_,
                           "trained_until": str(advisor.prices_.dates[-1].date()), "output": args.output})
    return 0


def run_allocate(args: argparse.Namespace) -> int:
    """Print the target weights as JSON."""
    from ..advisor.advisor import Advisor
    from ..advisor.prices import read_prices

    advisor = Advisor.load(args.advisor_dir)
    prices = read_prices(args.prices) if args.prices else None
    write_json(args.json, advisor.allocate(as_of=args.as_of, risk=args.risk, prices=prices))
    return 0


def run_profile(args: argparse.Namespace) -> int:
    """Ask (or read) the answers and print the profile."""
    from ..advisor.profile import QUESTIONS, profile_from_answers
    from ..errors import ConfigError

    if args.answers:
        try:
            answers = {k.strip(): int(v) for k, v in (part.split("=", 1) for part in args.answers)}
        except ValueError as err:
            raise ConfigError(f"--answers must look like horizon=2,fall=1,..., got {args.answers!r}") from err
    else:
        answers = {}
        for question in QUESTIONS:
            print(question.text)
            for i, (text, _) in enumerate(question.answers):
                print(f"  {i}) {text}")
            answers[question.key] = int(input("> ").strip())
    write_json(args.json, profile_from_answers(answers))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serve over HTTP."""
    from ..advisor.advisor import Advisor
    from ..advisor.service import create_advisor_app
    from ..serve.common import api_key_from_env
    from ..serve.runner import run_app

    key = api_key_from_env(args.api_key_env)
    app = create_advisor_app(Advisor.load(args.advisor_dir), api_key=key)
    LOGGER.info("advisor on http://%s:%d (docs: /docs)", args.host, args.port)
    run_app(app, host=args.host, port=args.port)
    return 0
