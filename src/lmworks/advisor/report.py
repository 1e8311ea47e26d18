"""The backtest as a picture: equity curves, drawdowns and Sharpe intervals, in an HTML page (inline SVG) or a PNG.

Agents are drawn as the mean daily return over their training seeds (one line per
agent and profile); the baselines as themselves. A third panel draws every strategy's
Sharpe ratio with its 95 % bootstrap interval, so no margin is read without its noise. The
page also carries the metrics table (intervals in brackets), so it reads on its own, and
needs nothing from the internet.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file
from ..errors import ConfigError
from .backtest import BacktestResult
from .metrics import drawdown_curve

COLUMNS = (("annual_return", "return", "{:+.1%}"), ("annual_volatility", "volatility", "{:.1%}"),
           ("sharpe", "Sharpe", "{:.2f}"), ("sortino", "Sortino", "{:.2f}"), ("max_drawdown", "max drawdown",
                                                                               "{:.1%}"),
           ("calmar", "Calmar", "{:.2f}"), ("turnover", "turnover / yr", "{:.1f}"), ("costs", "costs / yr", "{:.2%}"))


def _figure(result: BacktestResult):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("the backtest report needs matplotlib: pip install 'lmworks[advisor]'") from err
    import pandas as pd

    dates = pd.to_datetime(result.dates)
    fig = plt.figure(figsize=(11, 10))
    grid = fig.add_gridspec(3, 1, height_ratios=[3, 2, 3])
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    for name, runs in result.daily.items():
        daily = np.mean(np.stack(runs), axis=0)
        style: dict[str, Any] = {"lw": 2.2, "color": "black"} if name == "equal_weight" else {"lw": 1.2}
        top.plot(dates, np.cumprod(1 + daily), label=name, **style)
        bottom.plot(dates, drawdown_curve(daily), **style)
    top.set_ylabel("wealth (start = 1)")
    top.legend(fontsize=7, ncol=3, loc="upper left")
    top.set_title("Walk-forward test years, after trading costs")
    bottom.set_ylabel("drawdown")
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    _sharpe_bands(fig.add_subplot(grid[2]), result.summary["strategies"])
    fig.tight_layout()
    return fig, plt


def _sharpe_bands(axis, strategies: dict) -> None:
    """Each strategy's Sharpe ratio (excess of cash) with its 95 % interval; 1/N's value as a line."""
    names = [n for n in strategies if "sharpe_ci" in strategies[n]]
    values = np.array([strategies[n]["sharpe"] for n in names])
    low = values - np.array([strategies[n]["sharpe_ci"][0] for n in names])
    high = np.array([strategies[n]["sharpe_ci"][1] for n in names]) - values
    y = np.arange(len(names))
    axis.errorbar(values, y, xerr=[np.maximum(low, 0), np.maximum(high, 0)], fmt="o", capsize=3, color="#1f4e79")
    if "equal_weight" in strategies:
        axis.axvline(strategies["equal_weight"]["sharpe"], color="black", lw=1, ls="--", label="1/N")
        axis.legend(fontsize=7, loc="lower right")
    axis.set_yticks(y, names, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("Sharpe ratio on returns in excess of cash, with its 95 % stationary-bootstrap interval")


def _table(result: BacktestResult) -> str:
    head = "".join(f"<th>{label}</th>" for _, label, _ in COLUMNS)
    head += "<th>Sharpe - 1/N [95 %]</th><th>deflated Sharpe</th>"
    rows = []
    for name, metrics in result.summary["strategies"].items():
        cells = []
        for key, _, fmt in COLUMNS:
            value = fmt.format(metrics[key])
            if f"{key}_std" in metrics:
                value += f" ± {fmt.format(metrics[key + '_std']).lstrip('+')}"
            if f"{key}_ci" in metrics:
                value += " [" + ", ".join(fmt.format(v) for v in metrics[f"{key}_ci"]) + "]"
            cells.append(f"<td>{html.escape(value)}</td>")
        diff = metrics.get("sharpe_diff_vs_equal_weight")
        cells.append("<td>" + (html.escape(f"{diff['value']:+.2f} [{diff['ci'][0]:+.2f}, {diff['ci'][1]:+.2f}]")
                               if diff and name != "equal_weight" else "") + "</td>")
        cells.append(f"<td>{metrics['deflated_sharpe']:.2f}</td>" if "deflated_sharpe" in metrics else "<td></td>")
        rows.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>strategy</th>{head}</tr>{''.join(rows)}</table>"


def write_report(result: BacktestResult, output: str | Path) -> Path:
    """``.html`` (chart as inline SVG, plus the table) or ``.png`` (the chart)."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".html", ".htm", ".png"):
        raise ConfigError(f"{output}: the report must end in .html or .png")
    fig, plt = _figure(result)
    if suffix == ".png":
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110)
        plt.close(fig)
        with atomic_file(output, "wb") as fh:
            fh.write(png.getvalue())
        return output
    svg = io.StringIO()
    fig.savefig(svg, format="svg")
    plt.close(fig)
    period = result.summary.get("test_period") or ["", ""]
    config = result.summary["config"]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>lmworks advisor backtest</title>"
            "<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th:first-child{text-align:left}</style>"
            f"</head><body><h1>Walk-forward backtest</h1><p>Test years {period[0]} to {period[1]}, "
            f"{config['cost_bps']:g} bps costs on the assets traded, rebalanced every {config['rebalance_days']} "
            f"trading days, trades {config.get('execution_lag', 0)} close(s) after each decision, cash earning "
            f"{result.summary.get('cash_rate', {}).get('annual_mean', 0.0):.2%} a year on average; agents: "
            f"mean ± spread over {len(config['seeds'])} training seeds; [brackets]: 95 % stationary-bootstrap "
            f"intervals; Sharpe and Sortino on returns in excess of cash.</p>{svg.getvalue()}{_table(result)}"
            "</body></html>")
    with atomic_file(output) as fh:
        fh.write(page)
    return output
