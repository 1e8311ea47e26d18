"""What the agent sees at the close of day t: trailing returns and volatilities, nothing later.

Every feature of date ``t`` is a function of the prices on or before ``t`` (rolling
windows that end at ``t``), so a decision taken at the close of ``t`` cannot have seen
the future. Standardisation statistics come from the training dates only and travel
with the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .metrics import DAYS

#: Trailing windows (trading days) of the log-return features, and of the volatility features.
RETURN_WINDOWS = (5, 21, 63, 252)
VOL_WINDOWS = (21, 63)
LOOKBACK = max(RETURN_WINDOWS + VOL_WINDOWS)


def raw_features(prices: pd.DataFrame) -> np.ndarray:
    """``(dates, assets, features)``; rows before ``LOOKBACK`` are NaN (not enough history)."""
    logp = np.log(prices.to_numpy(dtype=np.float64))
    daily = np.vstack([np.full((1, logp.shape[1]), np.nan), np.diff(logp, axis=0)])
    parts = []
    for window in RETURN_WINDOWS:
        shifted = np.vstack([np.full((window, logp.shape[1]), np.nan), logp[:-window]])
        parts.append(logp - shifted)
    frame = pd.DataFrame(daily)
    for window in VOL_WINDOWS:
        parts.append(frame.rolling(window).std(ddof=1).to_numpy() * np.sqrt(DAYS))
    out = np.stack(parts, axis=-1)
    out[:LOOKBACK] = np.nan
    return out


@dataclass
class Scaler:
    """Per-feature mean and standard deviation (over assets and training dates)."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, features: np.ndarray, dates: slice) -> Scaler:
        """Statistics of ``features[dates]`` (training dates only)."""
        block = features[dates].reshape(-1, features.shape[-1])
        block = block[~np.isnan(block).any(axis=1)]
        return cls(block.mean(axis=0).tolist(), (block.std(axis=0) + 1e-8).tolist())

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Standardised features, clipped to +-5 so one crash day cannot saturate the network."""
        z = (features - np.asarray(self.mean)) / np.asarray(self.std)
        return np.clip(np.nan_to_num(z), -5.0, 5.0).astype(np.float32)


def observation(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The flat vector an agent sees: standardised features of every asset, then the current weights."""
    return np.concatenate([features.reshape(-1), weights.astype(np.float32)]).astype(np.float32)
