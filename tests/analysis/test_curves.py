"""The ensemble learning curve on synthetic curves with known parameters."""
import math

import numpy as np
import pytest

from lorasweep.analysis import curves

SIZES = [50, 100, 200, 500, 1000]


def _truth(case: int):
    """A saturating curve (a - b n^-c) that rises 0.1-0.3 from 50 to 1000 examples."""
    rng = np.random.default_rng(case)
    a, c = rng.uniform(0.8, 0.95), rng.uniform(0.3, 0.7)
    b = rng.uniform(0.1, 0.3) / (50 ** -c - 1000 ** -c)
    return (lambda n: a - b * n ** -c), rng


def _observe(true, rng, sigma=0.015, seeds=(1, 2), n_rep=60):
    """Scores of every (size, seed) with test-set noise, and resamples of them."""
    points = [(n, s) for s in seeds for n in SIZES]
    y = np.array([true(n) + rng.normal(0, sigma) for n, _ in points])
    reps = [y + rng.normal(0, sigma, len(y)) for _ in range(n_rep)]
    return points, y, [sigma] * len(y), reps


def test_each_family_is_monotone_and_bounded_and_the_ensemble_fits_a_clean_curve():
    x = np.geomspace(0.01, 10, 50)
    for fam in curves.FAMILIES:
        mid = [(lo + hi) / 2 if math.isfinite(hi) else lo + 1 for lo, hi in zip(fam.lower, fam.upper, strict=True)]
        y = fam.fn(x, *mid)
        assert np.all(np.diff(y) >= -1e-12), fam.name
        assert np.all(y <= mid[0] + 1e-12), fam.name          # never above its plateau (<= 1)
    true, _ = _truth(3)
    fit = curves.fit_ensemble(SIZES, [true(n) for n in SIZES])
    assert len(fit.members) == 6 and sum(fit.weights().values()) == pytest.approx(1, abs=1e-2)
    for n in (50, 300, 1000, 2000):
        assert float(fit.score_at(n)) == pytest.approx(true(n), abs=0.01)
    target = true(700)
    assert fit.size_for(target) == pytest.approx(700, rel=0.1)


@pytest.mark.slow
def test_the_80_percent_interval_covers_the_truth_in_at_least_80_of_100_cases():
    hits = 0
    for case in range(100):
        true, rng = _truth(case)
        n_true = rng.uniform(700, 2500)          # between 0.7x and 2.5x the largest measured size
        points, y, sig, reps = _observe(true, rng)
        ans = curves.labels_needed(points, y, sig, reps, true(n_true), seed=case)
        hits += ans.low80 is not None and ans.low80 <= n_true <= ans.high80
    assert hits >= 80, f"the 80% interval held the true answer in {hits} of 100 cases"


def test_answer_is_a_distribution_with_its_chance_of_being_reachable():
    true, rng = _truth(7)
    points, y, sig, reps = _observe(true, rng)
    ans = curves.labels_needed(points, y, sig, reps, true(800))
    assert ans.low95 <= ans.low80 <= ans.median <= ans.high80 <= ans.high95
    assert 0.9 <= ans.p_reachable <= 1 and "80% interval" in ans.message and "95%" in ans.message
    out_of_reach = curves.labels_needed(points, y, sig, reps, min(0.999, true(1e7) + 0.03))
    assert out_of_reach.p_reachable < 0.2 and out_of_reach.message.startswith("not answered")


def test_a_flat_curve_is_refused():
    points = [(n, 1) for n in SIZES]
    flat = [0.61, 0.60, 0.62, 0.61, 0.60]
    with pytest.raises(ValueError, match="do not rise with the train size"):
        curves.labels_needed(points, flat, [0.02] * 5, [flat] * 20, 0.7)


def test_a_non_monotone_curve_is_fitted_with_a_note():
    points = [(n, 1) for n in SIZES]
    dip = [0.50, 0.64, 0.72, 0.69, 0.80]                 # 500 below 200
    rng = np.random.default_rng(0)
    reps = [np.array(dip) + rng.normal(0, 0.01, 5) for _ in range(40)]
    ans = curves.labels_needed(points, dip, [0.01] * 5, reps, 0.74)
    assert ans.note.startswith("not monotone: the score falls by 0.030 from 200 to 500 (beyond the noise)")
    assert ans.median is not None and 300 < ans.median < 1500
    assert np.all(np.diff(ans.fit.score_at(np.array(SIZES, float))) > 0)


def test_backtest_trusts_a_curve_that_predicts_its_largest_size_and_not_one_that_does_not():
    true, rng = _truth(11)
    points, y, sig, reps = _observe(true, rng, sigma=0.01)
    good = curves.backtest(points, y, sig, reps)
    assert good.held_out == 1000 and good.trusted and abs(good.error) < 0.03
    assert good.low <= good.error <= good.high and good.message.startswith("The extrapolation earned trust")
    jump = y.copy()
    jump[[i for i, (n, _) in enumerate(points) if n == 1000]] += 0.15   # the largest size jumps far above the curve
    bad = curves.backtest(points, jump, sig, [r + (jump - y) for r in reps])
    assert not bad.trusted and bad.error < -0.1 and "did not earn trust" in bad.message
    assert curves.backtest([(n, 1) for n in (50, 100, 200)], [0.5, 0.6, 0.7], None, [[0.5, 0.6, 0.7]]) is None


def test_next_measurement_points_past_the_data_with_its_cost():
    true, rng = _truth(5)
    points, y, sig, reps = _observe(true, rng, n_rep=80)
    ans = curves.labels_needed(points, y, sig, reps, true(2500))
    s = curves.next_measurement(ans, noise=0.015, cost_per_example_s=0.5, cost_fixed_s=30)
    assert s.size not in SIZES and s.size > 1000 and 0 < s.narrows_by <= 1
    assert s.train_minutes == pytest.approx((30 + 0.5 * s.size) / 60)
    assert s.message.startswith(f"measure n={s.size:,} next") and "min" in s.message
