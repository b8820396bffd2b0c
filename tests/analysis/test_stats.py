import random

import numpy as np
import pytest
from scipy.stats import binomtest

from lorasweep.analysis import stats
from lorasweep.tasks.metrics import INVALID, classification_metrics

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




def test_holm_adjusts_in_order_and_stays_monotone():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]
    assert stats.holm([]) == []


def test_paired_test_over_seeds_uses_every_seed():
    labels = ["a", "b"]
    refs = ["a", "b"] * 50
    good = [list(refs), list(refs)]                      # two seeds, both right
    bad = [list(refs), ["a"] * 100]                      # seed 1 right, seed 2 always "a"
    r = stats.paired_test_seeds(good, bad, refs, labels, n_resamples=300)
    one = stats.paired_test(good[0], bad[0], refs, labels, n_resamples=300)
    assert one.diff == 0 and r.diff > 0.15               # the first seed alone sees no difference
    assert r.p_value < 0.05 and r.mcnemar_p < 0.05
