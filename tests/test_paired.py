"""The paired comparison the eval gate decides on (`engine.evaluation.paired`)."""

import random

import pytest

from engine.evaluation.paired import compare_counts

PASS, FAIL = (1, 1), (0, 1)


class TestExactMcNemar:
    """Pass/fail metrics: an exact interval from the discordant examples alone."""

    def test_ten_tasks_only_the_candidate_resolves_are_a_gain(self) -> None:
        """10 of 10 discordant for the candidate: the Clopper-Pearson lower bound of the share
        is 0.025 ** (1 / 10), so the difference's lower bound is 2 * that - 1."""
        result = compare_counts("resolved_rate", [PASS] * 10, [FAIL] * 10)
        assert result.method == "exact McNemar"
        assert (result.baseline, result.candidate, result.better, result.worse) == (0, 1, 10, 0)
        assert result.low == pytest.approx(2 * 0.025 ** (1 / 10) - 1, abs=1e-9)
        assert result.high == pytest.approx(1.0)
        assert result.gain

    def test_a_tie_is_no_gain_whatever_the_means(self) -> None:
        """Both at 0.000, or both at 0.500 with swaps, never count as a gain."""
        assert not compare_counts("pass_at_1", [FAIL] * 20, [FAIL] * 20).gain
        swapped = compare_counts("pass_at_1", [PASS] * 5 + [FAIL] * 5, [FAIL] * 5 + [PASS] * 5)
        assert swapped.delta == 0 and swapped.low < 0 < swapped.high and not swapped.gain

    def test_few_discordant_tasks_are_not_enough(self) -> None:
        """Two tasks more of 50 resolved is not a confident gain (exact p = 0.25)."""
        result = compare_counts("resolved_rate", [PASS] * 2 + [FAIL] * 48, [FAIL] * 50)
        assert result.delta == pytest.approx(0.04) and not result.gain

    def test_counts_that_are_not_pass_or_fail_are_refused(self) -> None:
        with pytest.raises(ValueError, match="pass/fail per example"):
            compare_counts("pass_at_1", [(2, 3)], [(0, 1)])


class TestPairedBootstrap:
    """Counted metrics: the micro-averages resampled over the examples."""

    def test_the_difference_is_of_the_micro_averages(self) -> None:
        """An example with four reference items weighs four times one with one."""
        result = compare_counts("accuracy", [(4, 4), (0, 1)], [(0, 4), (1, 1)])
        assert (result.candidate, result.baseline) == (0.8, 0.2)
        assert result.method == "paired bootstrap" and (result.better, result.worse) == (1, 1)

    def test_a_consistent_gain_is_confident_and_noise_is_not(self) -> None:
        """Every example up by one of four: a gain. Two runs drawn from one distribution: the
        interval covers zero."""
        assert compare_counts("accuracy", [(3, 4)] * 30, [(2, 4)] * 30).gain
        rng = random.Random(7)
        noise = [(rng.randint(0, 4), 4) for _ in range(400)]
        other = [(rng.randint(0, 4), 4) for _ in range(400)]
        result = compare_counts("accuracy", noise, other)
        assert result.low < 0 < result.high and not result.gain

    def test_the_same_seed_gives_the_same_interval(self) -> None:
        rng = random.Random(3)
        cand = [(rng.randint(0, 3), 3) for _ in range(50)]
        base = [(rng.randint(0, 3), 3) for _ in range(50)]
        first = compare_counts("accuracy", cand, base, seed=5)
        assert compare_counts("accuracy", cand, base, seed=5) == first

    def test_examples_that_do_not_pair_are_refused(self) -> None:
        with pytest.raises(ValueError, match="needs the same examples"):
            compare_counts("accuracy", [(1, 1)], [(1, 1), (0, 1)])
        with pytest.raises(ValueError, match="no examples"):
            compare_counts("accuracy", [], [])
