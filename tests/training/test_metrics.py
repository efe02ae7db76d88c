"""Metrics against hand-computed small examples, and against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from keras_gradattn.training import metrics

pytestmark = pytest.mark.backend_independent

# Four examples, three classes. Probabilities chosen so every number below is
# easy to do by hand: logits = log(probabilities).
PROBABILITIES = np.array(
    [
        [0.7, 0.2, 0.1],  # label 0, predicted 0, confidence 0.7
        [0.1, 0.6, 0.3],  # label 2, predicted 1, confidence 0.6
        [0.2, 0.3, 0.5],  # label 2, predicted 2, confidence 0.5
        [0.9, 0.05, 0.05],  # label 1, predicted 0, confidence 0.9
    ]
)
LOGITS = np.log(PROBABILITIES)
LABELS = np.array([0, 2, 2, 1])


def test_softmax_recovers_probabilities_and_is_stable():
    np.testing.assert_allclose(metrics.softmax(LOGITS), PROBABILITIES, atol=1e-12)
    huge = np.array([[1000.0, 0.0], [-1000.0, 1000.0]])
    assert np.all(np.isfinite(metrics.softmax(huge)))
    np.testing.assert_allclose(metrics.softmax(huge), [[1, 0], [0, 1]], atol=1e-12)


def test_top_k_accuracy_by_hand():
    assert metrics.top_k_accuracy(LOGITS, LABELS, 1) == 0.5  # examples 0 and 2
    # top-2: example 1 (label 2 is second), example 3 (label 1 ties 0.05 with
    # class 2; the stable tie-break puts class 1 first).
    assert metrics.top_k_accuracy(LOGITS, LABELS, 2) == 1.0
    assert metrics.top_k_accuracy(LOGITS, LABELS, 3) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        metrics.top_k_accuracy(LOGITS, LABELS, 4)


def test_confusion_matrix_by_hand():
    expected = [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    np.testing.assert_array_equal(metrics.confusion_matrix(LOGITS, LABELS), expected)


def test_precision_recall_f1_by_hand():
    # Per class: precision (1/2, 0/1, 1/1), recall (1/1, 0/1, 1/2),
    # F1 (2/3, 0, 2/3); supports (1, 1, 2).
    results = metrics.precision_recall_f1(LOGITS, LABELS)
    assert results["precision_macro"] == pytest.approx(0.5)
    assert results["recall_macro"] == pytest.approx(0.5)
    assert results["f1_macro"] == pytest.approx(4 / 9)
    assert results["precision_weighted"] == pytest.approx(0.25 * 0.5 + 0.5 * 1.0)
    assert results["recall_weighted"] == pytest.approx(0.25 * 1 + 0.5 * 0.5)
    assert results["f1_weighted"] == pytest.approx(0.25 * 2 / 3 + 0.5 * 2 / 3)


def test_nll_confidence_entropy_by_hand():
    assert metrics.negative_log_likelihood(LOGITS, LABELS) == pytest.approx(
        -(math.log(0.7) + math.log(0.3) + math.log(0.5) + math.log(0.05)) / 4
    )
    mean, std = metrics.confidence_stats(LOGITS)
    assert mean == pytest.approx(0.675)
    assert std == pytest.approx(np.std([0.7, 0.6, 0.5, 0.9]))
    entropies = [-sum(p * math.log(p) for p in row) for row in PROBABILITIES]
    assert metrics.predictive_entropy(LOGITS) == pytest.approx(np.mean(entropies))
    uniform = np.zeros((2, 4))
    assert metrics.predictive_entropy(uniform) == pytest.approx(math.log(4))


def test_ece_by_hand():
    # 10 bins: 0.7 -> (0.6, 0.7], 0.6 -> (0.5, 0.6], 0.5 -> (0.4, 0.5],
    # 0.9 -> (0.8, 0.9]; one example each: |correct - confidence| / 4.
    expected = (abs(1 - 0.7) + abs(0 - 0.6) + abs(1 - 0.5) + abs(0 - 0.9)) / 4
    assert metrics.expected_calibration_error(LOGITS, LABELS) == pytest.approx(expected)
    # Two bins: (0, 0.5] holds 0.5 (correct), (0.5, 1] the rest: accuracy
    # 1/3, mean confidence 0.7333.
    two_bins = 0.25 * abs(1 - 0.5) + 0.75 * abs(1 / 3 - (0.7 + 0.6 + 0.9) / 3)
    assert metrics.expected_calibration_error(LOGITS, LABELS, num_bins=2) == pytest.approx(two_bins)
    # Perfectly calibrated one-hot predictions: ECE 0.
    confident = np.log(np.eye(3)[[0, 1, 2]] * (1 - 3e-12) + 1e-12)
    assert metrics.expected_calibration_error(confident, [0, 1, 2]) < 1e-9


@pytest.fixture
def random_predictions():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(500, 7))
    # Class 6 is never the label: exercises zero-support classes.
    labels = rng.integers(0, 6, size=500)
    return logits, labels


def test_against_scikit_learn(random_predictions):
    logits, labels = random_predictions
    predictions = logits.argmax(axis=1)
    results = metrics.classification_metrics(logits, labels)
    for k in (1, 3, 5):
        assert results[f"top{k}_accuracy"] == pytest.approx(
            sk.top_k_accuracy_score(labels, logits, k=k, labels=range(7))
        )
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = sk.precision_recall_fscore_support(
            labels, predictions, labels=range(7), average=average, zero_division=0
        )
        assert results[f"precision_{average}"] == pytest.approx(precision)
        assert results[f"recall_{average}"] == pytest.approx(recall)
        assert results[f"f1_{average}"] == pytest.approx(f1)
    assert results["nll"] == pytest.approx(
        sk.log_loss(labels, metrics.softmax(logits), labels=range(7))
    )
    np.testing.assert_array_equal(
        metrics.confusion_matrix(logits, labels),
        sk.confusion_matrix(labels, predictions, labels=range(7)),
    )


def test_classification_metrics_reports_top_k_only_below_num_classes():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 0.0, 2.0]])
    results = metrics.classification_metrics(logits, [0, 2, 0])
    assert "top3_accuracy" not in results and "top5_accuracy" not in results
    assert results["top1_accuracy"] == pytest.approx(2 / 3)
    four_classes = np.zeros((2, 4))
    assert "top3_accuracy" in metrics.classification_metrics(four_classes, [0, 1])
    assert "top5_accuracy" not in metrics.classification_metrics(four_classes, [0, 1])


@pytest.mark.parametrize(
    "logits, labels, message",
    [
        (np.zeros(3), [0, 1, 2], "must be"),
        (np.zeros((2, 3)), [0], "labels"),
        (np.zeros((2, 3)), [0, 3], "classes"),
        (np.zeros((2, 3)), [0.0, 1.0], "integers"),
        (np.zeros((0, 3)), [], "at least one"),
    ],
)
def test_bad_inputs_are_rejected(logits, labels, message):
    with pytest.raises(ValueError, match=message):
        metrics.classification_metrics(logits, np.asarray(labels))
