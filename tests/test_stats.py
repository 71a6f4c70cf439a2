"""Paired comparisons over seeds: intervals checked against scipy's paired t-test and by simulation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from mixuplib.stats import paired

SEEDS = [0, 1, 2, 3, 4]


def test_per_seed_values_give_the_paired_t_interval():
    a = np.array([13.1, 12.4, 13.8, 12.9, 13.3])
    b = np.array([13.9, 13.0, 14.1, 13.8, 13.6])
    ours = paired(a, b, seeds=SEEDS, names=("mixup", "ERM"))
    peer = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert ours.low == pytest.approx(peer.low) and ours.high == pytest.approx(peer.high)
    assert ours.difference == pytest.approx(float(np.mean(a - b)))
    assert ours.verdict == "mixup lower" and ours.lower("mixup") and not ours.lower("ERM")
    assert ours.n_examples is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=8), st.floats(-3, 3))
def test_swapping_the_two_mirrors_the_interval(values, shift):
    a = np.array(values)
    b = a[::-1] + shift
    seeds = list(range(len(a)))
    ab, ba = paired(a, b, seeds=seeds, names=("a", "b")), paired(b, a, seeds=seeds, names=("b", "a"))
    assert ab.low == pytest.approx(-ba.high, abs=1e-9) and ab.high == pytest.approx(-ba.low, abs=1e-9)
    assert ab.verdict == ba.verdict


def test_per_example_values_add_the_test_images_to_the_interval():
    rng = np.random.default_rng(0)
    wrong_a = 100.0 * (rng.random((5, 2000)) < 0.13)
    wrong_b = 100.0 * (rng.random((5, 2000)) < 0.14)
    with_images = paired(wrong_a, wrong_b, seeds=SEEDS)
    seeds_only = paired(wrong_a.mean(1), wrong_b.mean(1), seeds=SEEDS)
    assert with_images.difference == pytest.approx(seeds_only.difference)
    assert with_images.high - with_images.low > seeds_only.high - seeds_only.low
    assert with_images.n_examples == 2000 and "2000 test images each" in with_images.describe()


def test_identical_seeds_leave_the_paired_test_over_images():
    # With every seed the same run, the seed term is 0: the interval is the paired z-interval over images.
    rng = np.random.default_rng(1)
    a_one, b_one = 100.0 * (rng.random(1500) < 0.2), 100.0 * (rng.random(1500) < 0.25)
    ours = paired(np.tile(a_one, (3, 1)), np.tile(b_one, (3, 1)), seeds=[0, 1, 2])
    d = a_one - b_one
    half = scipy_stats.norm.ppf(0.975) * d.std(ddof=1) / math.sqrt(d.size)
    assert ours.low == pytest.approx(d.mean() - half) and ours.high == pytest.approx(d.mean() + half)


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time():
    # Per-image difficulty, per-seed training noise and a true gap of 1 point between methods:
    # each replicate draws a new test set and new seeds, as a reader's rerun elsewhere would.
    rng = np.random.default_rng(2)
    covered, trials = 0, 400
    for _ in range(trials):
        difficulty = rng.normal(-2.0, 1.0, 800)  # logit of each image's error rate
        seed_effect = rng.normal(0.0, 0.15, (5, 1))
        p_a = 1 / (1 + np.exp(-(difficulty + seed_effect)))
        p_b = 1 / (1 + np.exp(-(difficulty + seed_effect + rng.normal(0.0, 0.15, (5, 1)) + 0.1)))
        a, b = 100.0 * (rng.random(p_a.shape) < p_a), 100.0 * (rng.random(p_b.shape) < p_b)
        # The truth: the expected gap over the image population, seeds and errors.
        population = rng.normal(-2.0, 1.0, 200_000)
        truth = 100 * float(np.mean(1 / (1 + np.exp(-population)) - 1 / (1 + np.exp(-(population + 0.1)))))
        result = paired(a, b, seeds=SEEDS)
        covered += result.low <= truth <= result.high
    assert 0.90 <= covered / trials <= 0.995, covered / trials


def test_ties_are_only_equivalences_within_delta():
    close = paired([13.0, 13.1, 12.9, 13.0, 13.05], [13.02, 13.08, 12.95, 13.01, 13.0], seeds=SEEDS)
    assert close.verdict == "not resolved at n = 5"
    assert close.within(0.5) and not close.within(0.01)
    noisy = paired([12.0, 14.0, 13.0], [13.5, 12.5, 13.0], seeds=[0, 1, 2])
    assert noisy.verdict == "not resolved at n = 3" and not noisy.within(0.5), "too noisy to say is no tie"
    one = paired([12.0], [14.0], seeds=[7])
    assert one.verdict == "not resolved at n = 1" and math.isinf(one.high)


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="a and b must both have shape"):
        paired([1.0, 2.0], [1.0], seeds=[0, 1])
    with pytest.raises(ValueError, match="seeds must name each of the 2 rows once"):
        paired([1.0, 2.0], [1.0, 2.5], seeds=[0, 0])
    with pytest.raises(ValueError, match="level must lie in"):
        paired([1.0, 2.0], [1.0, 2.5], seeds=[0, 1], level=95)
    with pytest.raises(ValueError, match="delta must be a finite number > 0"):
        paired([1.0, 2.0], [1.0, 2.5], seeds=[0, 1]).within(0)
    with pytest.raises(ValueError, match="name must be 'A' or 'B'"):
        paired([1.0, 2.0], [1.0, 2.5], seeds=[0, 1]).lower("C")
