"""`harness results --degradation` on the demo database: the numbers the leaderboard's view shows,
recomputed here from the stored per-seed scores."""
from __future__ import annotations

import math
import statistics

import numpy as np
from scipy import stats as sps
from typer.testing import CliRunner

from cli.app import app
from lb_demo_db import LANGUAGES, TEACHER

CHAIN = "depth(6,stride) > distill > vocab(10000)"


def _invoke(*args):
    return CliRunner().invoke(app, ["results", *args], env={"COLUMNS": "200"})


def test_degradation_prints_the_per_language_drops_and_the_correlation(demo_db):
    result = _invoke("--db", str(demo_db.path), "--degradation", "--task", "topic")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"recipe {CHAIN}" in out and "tasks topic" in out      # the two recipes tie: first by name
    sizes, drops, noise = [], [], []
    for lang, student in demo_db.compressed_keys(CHAIN).items():
        s, t = demo_db.scores[(student, "topic", lang)], demo_db.scores[(TEACHER, "topic", lang)]
        drop = 1 - statistics.mean(s.values()) / statistics.mean(t.values())
        spread = statistics.stdev(s[k] / t[k] for k in s)
        row = next(line for line in out.splitlines() if line.startswith(lang))
        assert f"{100 * drop:+.1f}% ± {100 * spread:.1f} (n=3)" in row
        if LANGUAGES[lang][3]:        # seen by XLM-R: in the fit
            sizes.append(math.log10(LANGUAGES[lang][1]))
            drops.append(drop)
            noise.append(spread ** 2 / len(s))
        else:
            assert "not seen by teacher" in row
    r = sps.pearsonr(np.array(sizes), np.array(drops)).statistic
    rho = sps.spearmanr(sizes, drops).statistic
    assert f"n = {len(sizes)} languages" in out
    assert f"Pearson r    {r:+.3f}" in out
    assert f"Spearman rho {rho:+.3f}" in out
    share = statistics.mean(noise) / statistics.variance(drops)
    ceiling = math.sqrt(max(0.0, 1 - share))
    assert f"seed noise: {share:.0%} of the variance of the drops between the {len(sizes)} languages" in out
    assert f"|r| cannot exceed {ceiling:.2f}" in out
    if ceiling > 0:
        assert f"r / {ceiling:.2f}): {r / ceiling:+.2f}" in out


def test_a_protocol_prefix_that_matches_nothing_is_a_one_line_error(demo_db):
    result = _invoke("--db", str(demo_db.path), "--degradation", "--protocol", "nope")
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: --protocol 'nope' matches 0")
    assert len(result.output.strip().splitlines()) == 1


def test_the_other_protocol_has_no_compressed_points(demo_db):
    result = _invoke("--db", str(demo_db.path), "--degradation", "--protocol", "proto-other")
    assert result.exit_code == 0
    assert result.output.startswith("no compressed model with a teacher score")
