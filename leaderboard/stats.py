"""Correlation of compression damage with the teacher's pre-training data size.

y (a relative drop) is regressed on log10(size): a least-squares line, Pearson's r on log10(size)
(the axis the chart draws), Spearman's rho (rank based, so the log does not matter), their
p-values from scipy.stats, and percentile bootstrap intervals from resampling languages with
replacement under a fixed seed, so the same numbers give the same intervals.

`seed_noise` says how much of the spread of the drops between languages the seeds alone would
give: each language's drop is a mean over a few paired seeds, so it carries the variance
std² / n, and that noise lowers any correlation measured through it (Spearman's attenuation:
|r| can reach at most sqrt(reliability)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

MIN_POINTS = 3


@dataclass(frozen=True)
class Correlation:
    n: int
    slope: float                 # drop per decade of data: y = intercept + slope * log10(size)
    intercept: float
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    pearson_ci: tuple[float, float]
    spearman_ci: tuple[float, float]
    confidence: float
    n_boot: int                  # resamples drawn
    n_boot_used: int             # resamples where both correlations were defined
    seed: int

    def predict(self, size: np.ndarray | Sequence[float]) -> np.ndarray:
        return self.intercept + self.slope * np.log10(np.asarray(size, dtype=float))


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair; NaN where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / denom
    r[~(denom > 1e-12)] = np.nan
    return np.clip(r, -1.0, 1.0)


def bootstrap_ci(x: np.ndarray, y: np.ndarray, *, n_boot: int, seed: int, confidence: float
                 ) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Percentile intervals for (Pearson r, Spearman rho) over `n_boot` paired resamples."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    xb, yb = x[idx], y[idx]
    pearson = _rowwise_pearson(xb, yb)
    spearman = _rowwise_pearson(sps.rankdata(xb, axis=1), sps.rankdata(yb, axis=1))
    ok = ~(np.isnan(pearson) | np.isnan(spearman))
    tail = 100 * (1 - confidence) / 2
    if not ok.any():
        nan = (float("nan"), float("nan"))
        return nan, nan, 0
    p_lo, p_hi = np.percentile(pearson[ok], [tail, 100 - tail])
    s_lo, s_hi = np.percentile(spearman[ok], [tail, 100 - tail])
    return (float(p_lo), float(p_hi)), (float(s_lo), float(s_hi)), int(ok.sum())


def correlate_with_log_size(size: Sequence[float], drop: Sequence[float], *, n_boot: int = 2000,
                            seed: int = 0, confidence: float = 0.95) -> Correlation:
    """Fit drop = a + b * log10(size) and correlate; needs MIN_POINTS positive sizes."""
    x = np.asarray(size, dtype=float)
    y = np.asarray(drop, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("size and drop must be 1-D sequences of the same length")
    if len(x) < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} languages to correlate, got {len(x)}")
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)) or np.any(x <= 0):
        raise ValueError("sizes must be positive and finite, drops finite")
    lx = np.log10(x)
    if np.ptp(lx) == 0 or np.ptp(y) == 0:
        raise ValueError("all sizes (or all drops) are equal: the correlation is undefined")
    fit = sps.linregress(lx, y)
    pearson = sps.pearsonr(lx, y)
    spearman = sps.spearmanr(lx, y)
    pci, sci, used = bootstrap_ci(lx, y, n_boot=n_boot, seed=seed, confidence=confidence)
    return Correlation(
        n=len(x), slope=float(fit.slope), intercept=float(fit.intercept),
        pearson_r=float(pearson.statistic), pearson_p=float(pearson.pvalue),
        spearman_rho=float(spearman.statistic), spearman_p=float(spearman.pvalue),
        pearson_ci=pci, spearman_ci=sci, confidence=confidence, n_boot=n_boot,
        n_boot_used=used, seed=seed,
    )


@dataclass(frozen=True)
class SeedNoise:
    n: int                       # languages
    noise_variance: float        # mean over languages of paired std² / paired seeds
    between_variance: float      # sample variance of the languages' drops

    @property
    def share(self) -> float:
        """The part of the variance between languages that the seeds alone give."""
        return self.noise_variance / self.between_variance

    @property
    def ceiling(self) -> float:
        """The largest |r| a drop this noisy can show against an exactly known x:
        sqrt(reliability), with reliability = 1 - share (0 when the noise is the whole spread)."""
        return math.sqrt(max(0.0, 1.0 - self.share))


def seed_noise(drops: Sequence[float], stds: Sequence[float], seeds: Sequence[float]) -> SeedNoise | None:
    """The seeds' share of the variance between the languages' drops (see the module docstring);
    None below MIN_POINTS languages, when a language lacks a paired spread or has one seed, or when
    the drops do not vary."""
    y, sd, k = (np.asarray(v, dtype=float) for v in (drops, stds, seeds))
    if len(y) < MIN_POINTS or not (np.all(np.isfinite(sd)) and np.all(k >= 2)):
        return None
    between = float(np.var(y, ddof=1))
    if not between > 1e-12:   # equal drops (up to rounding): no spread to share
        return None
    return SeedNoise(len(y), float(np.mean(sd ** 2 / k)), between)
