"""leaderboard.stats against correlations and fits computed by hand."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as sps

from leaderboard.stats import bootstrap_ci, correlate_with_log_size, seed_noise

SIZES = [0.3, 0.5, 1.6, 3.2, 6.1, 23.2]          # GiB (CC-100 of hau, gle, swh, isl, est, slk)
DROPS = [0.100, 0.093, 0.072, 0.075, 0.054, 0.035]


def mean(v):
    return sum(v) / len(v)


def pearson(x, y):
    mx, my = mean(x), mean(y)
    return (sum((a - mx) * (b - my) for a, b in zip(x, y))
            / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)))


def average_ranks(v):
    """1-based ranks, ties sharing the mean of their positions."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def t_p(r, n):
    t = r * math.sqrt((n - 2) / (1 - r * r))
    return 2 * sps.t.sf(abs(t), n - 2)


def test_matches_hand_computation():
    c = correlate_with_log_size(SIZES, DROPS)
    x = [math.log10(s) for s in SIZES]
    r = pearson(x, DROPS)
    rho = pearson(average_ranks(x), average_ranks(DROPS))
    slope = (sum((a - mean(x)) * (b - mean(DROPS)) for a, b in zip(x, DROPS))
             / sum((a - mean(x)) ** 2 for a in x))
    assert c.n == 6
    assert c.pearson_r == pytest.approx(r, abs=1e-12)
    assert c.spearman_rho == pytest.approx(rho, abs=1e-12)
    # one swapped pair: |rho| = 1 - 6 * sum(d^2) / (n (n^2 - 1)) with sum(d^2) = 2
    assert rho == pytest.approx(-1 + 6 * 2 / (6 * 35))
    assert c.pearson_p == pytest.approx(t_p(r, 6), rel=1e-9)
    assert c.spearman_p == pytest.approx(t_p(rho, 6), rel=1e-9)
    assert c.slope == pytest.approx(slope, abs=1e-12)
    assert c.intercept == pytest.approx(mean(DROPS) - slope * mean(x), abs=1e-12)
    assert c.predict([1.0])[0] == pytest.approx(c.intercept)
    assert c.pearson_ci[0] <= c.pearson_r <= c.pearson_ci[1]
    assert c.spearman_ci[0] <= c.spearman_rho <= c.spearman_ci[1]


def test_ties_use_average_ranks():
    drops = [0.10, 0.08, 0.08, 0.05, 0.05, 0.01]
    c = correlate_with_log_size(SIZES, drops)
    x = [math.log10(s) for s in SIZES]
    assert c.spearman_rho == pytest.approx(pearson(average_ranks(x), average_ranks(drops)))


def test_bootstrap_is_seeded_and_agrees_with_scipy():
    a = correlate_with_log_size(SIZES, DROPS, n_boot=5000, seed=7)
    b = correlate_with_log_size(SIZES, DROPS, n_boot=5000, seed=7)
    c = correlate_with_log_size(SIZES, DROPS, n_boot=5000, seed=8)
    assert a.pearson_ci == b.pearson_ci and a.spearman_ci == b.spearman_ci
    assert a.pearson_ci != c.pearson_ci
    # an independent bootstrap: a plain loop, the hand formula, another random stream
    rng = random.Random(1)
    x = [math.log10(s) for s in SIZES]
    rs = []
    while len(rs) < 5000:
        idx = [rng.randrange(len(x)) for _ in x]
        if len({x[i] for i in idx}) > 1:
            rs.append(pearson([x[i] for i in idx], [DROPS[i] for i in idx]))
    low, high = np.percentile(rs, [2.5, 97.5])
    # two Monte Carlo estimates of the same interval
    assert a.pearson_ci[0] == pytest.approx(low, abs=0.05)
    assert a.pearson_ci[1] == pytest.approx(high, abs=0.05)


def test_exact_line_gives_a_degenerate_interval_and_drops_constant_resamples():
    sizes = [0.5, 2.0, 8.0]
    drops = [0.1 - 0.02 * math.log10(s) for s in sizes]
    c = correlate_with_log_size(sizes, drops, n_boot=500, seed=3)
    assert c.pearson_r == pytest.approx(-1)
    assert c.pearson_ci == pytest.approx((-1, -1)) and c.spearman_ci == pytest.approx((-1, -1))
    # a resample drawing one language three times has no correlation: it is not used
    idx = np.random.default_rng(3).integers(0, 3, size=(500, 3))
    constant = int(sum(len(set(row)) == 1 for row in idx.tolist()))
    assert constant > 0 and c.n_boot_used == 500 - constant


def test_bootstrap_ci_returns_nan_when_every_resample_is_constant():
    pci, sci, used = bootstrap_ci(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0]),
                                  n_boot=10, seed=0, confidence=0.95)
    assert used == 0 and all(math.isnan(v) for v in (*pci, *sci))


@pytest.mark.parametrize("sizes,drops,msg", [
    ([1.0, 2.0], [0.1, 0.2], "at least 3"),
    ([1.0, 0.0, 2.0], [0.1, 0.2, 0.3], "positive"),
    ([2.0, 2.0, 2.0], [0.1, 0.2, 0.3], "undefined"),
    ([1.0, 2.0, 3.0], [0.1, 0.1, 0.1], "undefined"),
    ([1.0, 2.0, 3.0], [0.1, 0.2], "same length"),
])
def test_bad_input(sizes, drops, msg):
    with pytest.raises(ValueError, match=msg):
        correlate_with_log_size(sizes, drops)


def test_seed_noise_by_hand():
    # three languages' drops, each a mean over 3 paired seeds with the sample std given
    n = seed_noise([0.10, 0.20, 0.30], [0.03, 0.06, 0.0], [3, 3, 3])
    assert n.n == 3
    assert n.noise_variance == pytest.approx((0.03 ** 2 / 3 + 0.06 ** 2 / 3 + 0) / 3)   # 0.0005
    assert n.between_variance == pytest.approx(0.01)
    assert n.share == pytest.approx(0.05) and n.ceiling == pytest.approx(math.sqrt(0.95))
    noisy = seed_noise([0.10, 0.11, 0.12], [0.05, 0.05, 0.05], [2, 2, 2])   # the seeds outweigh the spread
    assert noisy.share > 1 and noisy.ceiling == 0.0


@pytest.mark.parametrize("drops,stds,seeds", [
    ([0.1, 0.2], [0.01, 0.01], [3, 3]),                        # too few languages
    ([0.1, 0.2, 0.3], [0.01, float("nan"), 0.01], [3, 3, 3]),   # one without a paired spread
    ([0.1, 0.2, 0.3], [0.01, 0.01, 0.01], [3, 1, 3]),           # one seed has no spread
    ([0.1, 0.1, 0.1], [0.01, 0.01, 0.01], [3, 3, 3]),           # no spread between languages
])
def test_seed_noise_is_none_without_what_it_needs(drops, stds, seeds):
    assert seed_noise(drops, stds, seeds) is None
