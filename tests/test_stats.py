import random

import numpy as np
import pytest
from scipy.stats import binomtest

from lorasweep import stats
from lorasweep.metrics import INVALID, classification_metrics

LABELS = ["a", "b", "c", "d"]


def _sample(n, acc, seed):
    rng = random.Random(seed)
    refs = [rng.choice(LABELS[:3]) for _ in range(n)]
    preds = [r if rng.random() < acc else rng.choice(LABELS + [INVALID]) for r in refs]
    return preds, refs


def test_fast_macro_f1_equals_the_metric_module():
    for seed in range(5):
        preds, refs = _sample(80, 0.6, seed)
        p, r, k = stats._encode(preds, refs, LABELS)
        assert stats._macro_f1(p, r, k) == pytest.approx(classification_metrics(preds, refs, LABELS)["f1_macro"])


def test_bootstrap_ci_brackets_the_estimate_and_shrinks_with_data():
    preds, refs = _sample(100, 0.7, 1)
    point, lo, hi = stats.bootstrap_ci(preds, refs, LABELS, "accuracy", n_resamples=500, seed=3)
    assert lo <= point <= hi and hi - lo > 0.05
    assert stats.bootstrap_ci(preds, refs, LABELS, "accuracy", n_resamples=500, seed=3) == (point, lo, hi)
    big_p, big_r = _sample(2000, 0.7, 1)
    _, lo2, hi2 = stats.bootstrap_ci(big_p, big_r, LABELS, "accuracy", n_resamples=300, seed=3)
    assert hi2 - lo2 < (hi - lo) / 2


def test_paired_test_identical_and_clearly_better():
    preds, refs = _sample(200, 0.5, 2)
    same = stats.paired_test(preds, preds, refs, LABELS, n_resamples=300)
    assert same.diff == 0 and same.p_value == 1.0 and same.mcnemar_p == 1.0 and not same.significant
    better = [r for r in refs]
    res = stats.paired_test(better, preds, refs, LABELS, n_resamples=300)
    assert res.diff > 0.3 and res.p_value < 0.01 and res.mcnemar_p < 1e-6 and res.significant
    assert res.ci_low > 0


def test_mcnemar_matches_binomial_test():
    a = np.array([True] * 30 + [False] * 10 + [True] * 5)
    b = np.array([True] * 30 + [True] * 3 + [False] * 7 + [False] * 5)
    n01 = int(np.sum(a & ~b))
    n10 = int(np.sum(~a & b))
    assert stats.mcnemar_exact(a, b) == pytest.approx(binomtest(min(n01, n10), n01 + n10, 0.5).pvalue)


def test_curve_fit_recovers_a_known_curve():
    sizes = [50, 100, 200, 400, 800]
    truth = dict(a=0.9, b=2.0, c=0.5)
    scores = [stats.power_law(n, **truth) for n in sizes]
    fit = stats.fit_curve(sizes, scores)
    assert (fit.a, fit.b, fit.c) == pytest.approx((0.9, 2.0, 0.5), rel=1e-3)
    assert fit.size_for(0.8) == pytest.approx(400, rel=1e-2)      # (2 / 0.1) ** 2
    assert fit.score_at(1600) == pytest.approx(0.85, abs=1e-3)


def test_labels_needed_with_noise_seeds_and_refusals():
    rng = np.random.default_rng(0)
    sizes, scores = [], []
    for n in (50, 100, 200, 400, 800):
        for _ in range(3):   # three seeds per size
            sizes.append(n)
            scores.append(stats.power_law(n, 0.9, 2.0, 0.5) + rng.normal(0, 0.01))
    ans = stats.labels_needed(sizes, scores, 0.8, n_boot=100)
    assert ans.size == pytest.approx(400, rel=0.25) and ans.low <= ans.size <= ans.high
    assert 250 < ans.low and ans.high < 800
    assert "training examples" in ans.message
    never = stats.labels_needed(sizes, scores, 0.95, n_boot=50)
    assert never.size is None and "levels off" in never.message


def test_labels_needed_refuses_far_extrapolation():
    sizes = [50, 100, 200, 400, 800] * 2
    scores = [stats.power_law(n, 0.9, 2.0, 0.5) for n in sizes]
    far = stats.labels_needed(sizes, scores, 0.88, n_boot=50)   # truth: 10,000 = 12.5x the largest size
    assert far.size is None and "not extrapolating" in far.message and "10,0" in far.message
    near = stats.labels_needed(sizes, scores, 0.86, n_boot=50)  # truth: 2,500 = 3.1x: answered
    assert near.size == pytest.approx(2500, rel=0.01)


def test_curve_needs_three_sizes():
    with pytest.raises(ValueError, match="3 or more"):
        stats.fit_curve([10, 10, 20], [0.1, 0.2, 0.3])
