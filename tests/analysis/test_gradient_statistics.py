import numpy as np
import pytest

from keras_gradattn.analysis import gradient_flow_statistics

pytestmark = pytest.mark.backend_independent


def test_statistics_on_known_norms():
    names = ["a", "b", "c", "d", "e"]
    norms = [1e-7, 0.5, 0.25, 20.0, 2.0]
    stats = gradient_flow_statistics(names, norms)
    assert stats["num_layers"] == 5
    assert stats["health_score"] == pytest.approx(3 / 5)  # b, c, e
    assert stats["vanishing_layers"] == ["a"]
    assert stats["exploding_layers"] == ["d"]
    ratios = [1e-7 / 0.5, 0.5 / 0.25, 0.25 / 20.0, 20.0 / 2.0]
    assert stats["decay_rates"] == pytest.approx(ratios)
    assert stats["average_decay_rate"] == pytest.approx(np.mean(ratios))
    assert stats["mean_norm"] == pytest.approx(np.mean(norms))
    assert stats["std_norm"] == pytest.approx(np.std(norms))


def test_thresholds_are_exclusive():
    stats = gradient_flow_statistics(["low", "high", "mid"], [1e-6, 10.0, 1.0])
    assert stats["health_score"] == pytest.approx(1 / 3)
    assert stats["vanishing_layers"] == [] and stats["exploding_layers"] == []


def test_bottleneck_is_two_std_below_the_mean():
    norms = [1.0] * 9 + [0.0]  # mean 0.9, std 0.3: threshold 0.3
    stats = gradient_flow_statistics([f"l{i}" for i in range(10)], norms)
    assert stats["bottleneck_threshold"] == pytest.approx(0.3)
    assert stats["bottleneck_layers"] == ["l9"]
    # A zero denominator has no finite ratio: left out, marked None.
    assert stats["decay_rates"][-1] is None
    assert stats["average_decay_rate"] == pytest.approx(1.0)


def test_statistics_reject_mismatched_input():
    with pytest.raises(ValueError, match=r"received shape \(2,\) for 3 layers"):
        gradient_flow_statistics(["a", "b", "c"], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one layer"):
        gradient_flow_statistics([], [])
