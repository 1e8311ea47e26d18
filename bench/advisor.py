"""Robo-advisor walk-forward backtests with intervals: the agents against 1/N and their strategic mixes.

Every strategy trades one continuous portfolio across the test years, decides at a close and
trades at the next (``--execution-lag 1``), pays 10 bps on the assets it trades, and holds cash
that earns ``--cash-rate`` (a constant annual rate: the shipped price files carry no bill
yield). Sharpe ratios are on returns in excess of that rate. Every number carries a 95 %
stationary-bootstrap interval; each Sharpe ratio a paired interval on its difference to 1/N.

    .venv/bin/python bench/advisor.py [--datasets sp500,factors] [--seeds 10] [--agents dqn,ppo]
                                      [--cash-rate 0.013] [--test-years 5] [--jobs 2]
                                      [--results]

``--agents none`` runs the baselines and strategic mixes only (seconds, not hours). The
default rate, 1.3 %, is about the 2018-2022 average of the 3-month US Treasury bill.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmworks.advisor.agents import AgentConfig  # noqa: E402
from lmworks.advisor.backtest import BacktestConfig, backtest  # noqa: E402
from lmworks.advisor.prices import read_prices  # noqa: E402
from lmworks.datasets import export_files  # noqa: E402

COLUMNS = ["data", "strategy", "return [95 %]", "volatility [95 %]", "Sharpe [95 %]", "Sharpe - 1/N [95 %]",
           "max drawdown [95 %]", "turnover / year", "deflated Sharpe"]


def pct(value: float, ci: list[float] | None = None, sign: str = "+") -> str:
    text = format(value, f"{sign}.1%")
    if ci is not None:
        text += f" [{ci[0]:{sign}.1%}, {ci[1]:{sign}.1%}]"
    return text.replace("%", " %")


def num(value: float, ci: list[float] | None = None, std: float | None = None) -> str:
    text = f"{value:.2f}" + (f" ± {std:.2f}" if std is not None else "")
    return text if ci is None else f"{text} [{ci[0]:.2f}, {ci[1]:.2f}]"


def rows_for(data: str, summary: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in summary["strategies"].items():
        diff = m.get("sharpe_diff_vs_equal_weight")
        rows.append([data, name.replace("_", " "), pct(m["annual_return"], m["annual_return_ci"]),
                     pct(m["annual_volatility"], m["annual_volatility_ci"], sign="-"),
                     num(m["sharpe"], m["sharpe_ci"], m.get("sharpe_std")),
                     f"{diff['value']:+.2f} [{diff['ci'][0]:+.2f}, {diff['ci'][1]:+.2f}]" if diff else "-",
                     pct(m["max_drawdown"], m["max_drawdown_ci"], sign="-"), f"{m['turnover']:.2f}",
                     f"{m['deflated_sharpe']:.2f}"])
    return rows


def show(rows: list[list[Any]]) -> None:
    width = [max(len(str(r[i])) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for row in [COLUMNS, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, width, strict=True)), flush=True)


def values_for(data: str, summary: dict[str, Any]) -> dict[str, Any]:
    """What the guide quotes per strategy: Sharpe, its interval and gap to 1/N, volatility, drawdown, turnover."""
    out: dict[str, Any] = {}
    for name, m in summary["strategies"].items():
        key = f"{data}_{name}"
        out[f"{key}_sharpe"] = round(m["sharpe"], 2)
        out[f"{key}_sharpe_ci"] = "[" + ", ".join(f"{v:.2f}" for v in m["sharpe_ci"]) + "]"
        out[f"{key}_volatility"] = f"{m['annual_volatility']:.1%}".replace("%", " %")
        out[f"{key}_drawdown"] = f"{m['max_drawdown']:.1%}".replace("%", " %")
        out[f"{key}_turnover"] = round(m["turnover"], 2)
        mixes = [k.removeprefix("sharpe_diff_vs_") for k in m if k.startswith("sharpe_diff_vs_strategic")]
        for ref in ("equal_weight", *mixes):
            diff = m.get(f"sharpe_diff_vs_{ref}")
            if diff:
                short = "strategic" if ref.startswith("strategic") else ref
                out[f"{key}_vs_{short}"] = f"{diff['value']:+.2f} [{diff['ci'][0]:+.2f}, {diff['ci'][1]:+.2f}]"
    return out


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_dataset(data: str, agents: tuple[str, ...], seeds: int, cash_rate: float, test_years: int,
                work: Path) -> tuple[dict[str, Any], float]:
    """One price file's backtest: its summary and the minutes it took."""
    prices = read_prices(export_files(data, work / data)["prices"])
    config = BacktestConfig(test_years=test_years, seeds=tuple(range(seeds)), agents=agents,
                            agent=AgentConfig(), cash_rate=cash_rate)
    start = time.monotonic()
    result = backtest(prices, config, progress=True)
    return result.summary, (time.monotonic() - start) / 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="sp500,factors")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--agents", default="dqn,ppo", help="comma-separated, or none: baselines and mixes only")
    ap.add_argument("--cash-rate", type=float, default=0.013)
    ap.add_argument("--test-years", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1, help="price files backtested in parallel, one process each")
    ap.add_argument("--results", action="store_true", help="write docs/results/advisor.json")
    args = ap.parse_args()
    agents = () if args.agents == "none" else tuple(args.agents.split(","))
    work = Path(tempfile.mkdtemp(prefix="lmworks-bench-advisor-"))
    rows: list[list[Any]] = []
    values: dict[str, Any] = {"cash_rate": args.cash_rate, "seeds": args.seeds, "agents": list(agents)}
    periods = []
    datasets = args.datasets.split(",")
    jobs = [(data, agents, args.seeds, args.cash_rate, args.test_years, work) for data in datasets]
    if args.jobs > 1:
        # One process per price file: the agents are small, so a process per core beats torch threads.
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(args.jobs, len(jobs)), initializer=_one_thread) as pool:
            done = list(pool.map(run_dataset, *zip(*jobs, strict=True)))
    else:
        done = [run_dataset(*job) for job in jobs]
    for data, (summary, minutes) in zip(datasets, done, strict=True):
        period = summary["test_period"]
        periods.append(f"{data} {period[0][:4]}-{period[1][:4]}")
        print(f"{data}: test {period[0]} .. {period[1]}, {minutes:.1f} min", flush=True)
        rows += rows_for(data, summary)
        values.update(values_for(data, summary))
        values[f"{data}_minutes"] = round(minutes, 1)
    show(rows)
    if args.results:
        from results import record

        what_agents = (f"agents {', '.join(agents)} with {args.seeds} training seeds each (mean ± sd over seeds, "
                       "interval over days and seeds)" if agents else "baselines and strategic mixes only (no agents)")
        record("advisor", title="Robo-advisor walk-forward backtest, with intervals",
               what=f"{'; '.join(periods)} walk-forward; one continuous portfolio per strategy, decide at a close "
               f"and trade at the next, 10 bps on the assets traded, cash earning {args.cash_rate:.1%} a year; "
               f"{what_agents}; Sharpe on returns in excess of cash; [95 %]: stationary-bootstrap percentile "
               "intervals (mean block n^(1/3) days), Sharpe - 1/N paired on the same resampled days; deflated "
               "Sharpe with the strategies of the table as the configurations tried",
               baseline="equal weight (1/N), inverse volatility, minimum variance and HRP from skfolio, and each "
               "profile's static strategic mix, on the same days, costs and cash rate", columns=COLUMNS, rows=rows,
               values=values, packages=("stable-baselines3", "skfolio"),
               headline=headline(values))


def headline(values: dict[str, Any]) -> dict[str, str]:
    """The README's row: the conservative DQN's Sharpe against 1/N, or 1/N alone when no agent ran."""
    ew = f"1/N {values['sp500_equal_weight_sharpe']} {values['sp500_equal_weight_sharpe_ci']}"
    if "sp500_dqn_conservative_sharpe" in values:
        return {"task": "Robo-advisor 2018-22 (conservative DQN): Sharpe over cash [95 %]; minus 1/N's",
                "lmworks": f"{values['sp500_dqn_conservative_sharpe']} {values['sp500_dqn_conservative_sharpe_ci']}; "
                f"{values['sp500_dqn_conservative_vs_equal_weight']}", "baseline": ew}
    return {"task": "Robo-advisor 2018-22: 1/N's Sharpe over cash [95 %], turnover / year (agents: rerun pending)",
            "lmworks": f"{ew}, {values['sp500_equal_weight_turnover']}",
            "baseline": f"strategic conservative {values['sp500_strategic_conservative_sharpe']} "
            f"{values['sp500_strategic_conservative_sharpe_ci']}"}


if __name__ == "__main__":
    main()
