"""The paper's test-set metrics, as pure NumPy functions of `(logits, labels)`.

The paper lists them (docs/paper.md#training-protocol): top-1/3/5 accuracy, macro and
weighted precision/recall/F1, mean and std of the confidence, mean predictive
entropy, ECE with 10 bins and the test loss (NLL). Everything here takes
`logits (N, K)` (any real values; softmax is applied here, stably) and integer
`labels (N,)`, and returns plain Python floats, so the results go straight
into JSON. No Keras, no backend: the same numbers on every backend.
"""

import numpy as np

ECE_BINS = 10
TOP_K = (1, 3, 5)


def _check(logits, labels):
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, num_classes), got shape {logits.shape}.")
    if len(labels) != len(logits):
        raise ValueError(f"{len(logits)} rows of logits but {len(labels)} labels.")
    if len(labels) == 0:
        raise ValueError("No examples: metrics need at least one.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"labels in [{labels.min()}, {labels.max()}] but there are "
            f"{logits.shape[1]} classes."
        )
    return logits, labels.astype(np.int64)


def log_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    return np.exp(log_softmax(logits))


def top_k_accuracy(logits, labels, k=1):
    """Fraction of examples whose label is among the `k` highest logits.

    Ties are broken by class index (lower first), as `np.argsort` with a
    stable sort on the negated logits.
    """
    logits, labels = _check(logits, labels)
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be in 1..{logits.shape[1]}, got {k}.")
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def confusion_matrix(logits, labels, num_classes=None):
    """`(K, K)` int counts; row = true class, column = predicted (argmax)."""
    logits, labels = _check(logits, labels)
    num_classes = num_classes or logits.shape[1]
    predictions = np.argmax(logits, axis=1)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def precision_recall_f1(logits, labels):
    """Macro and weighted precision, recall and F1 of the argmax predictions.

    As scikit-learn's `precision_recall_fscore_support` with
    `zero_division=0`: a class never predicted has precision 0, a class
    without examples recall 0; F1 is the harmonic mean per class (0 when both
    are 0). "weighted" averages per-class values by the class's support;
    "macro" is the plain mean over all `num_classes` classes, classes absent
    from `labels` included (sklearn's `labels=range(K)`).
    """
    matrix = confusion_matrix(logits, labels)
    true_positives = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, support, out=np.zeros_like(true_positives), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    weights = support / support.sum()
    results = {}
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
        results[f"{name}_macro"] = float(values.mean())
        results[f"{name}_weighted"] = float(np.sum(values * weights))
    return results


def negative_log_likelihood(logits, labels):
    """Mean cross-entropy of the softmax of `logits` (the test loss), in nats."""
    logits, labels = _check(logits, labels)
    return float(-np.mean(log_softmax(logits)[np.arange(len(labels)), labels]))


def confidence_stats(logits):
    """Mean and (population) std of the top softmax probability."""
    confidence = softmax(logits).max(axis=1)
    return float(confidence.mean()), float(confidence.std())


def predictive_entropy(logits):
    """Mean entropy of the softmax distribution, in nats (0 .. log K)."""
    log_probabilities = log_softmax(logits)
    return float(np.mean(-np.sum(np.exp(log_probabilities) * log_probabilities, axis=1)))


def expected_calibration_error(logits, labels, num_bins=ECE_BINS):
    """ECE (Guo et al. 2017): `sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|`.

    Examples are binned by their top softmax probability into `num_bins`
    equal-width bins `(i/num_bins, (i+1)/num_bins]` (a confidence of exactly
    0 falls in the first); empty bins contribute nothing.
    """
    logits, labels = _check(logits, labels)
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}.")
    probabilities = softmax(logits)
    confidence = probabilities.max(axis=1)
    correct = (np.argmax(logits, axis=1) == labels).astype(np.float64)
    # Right-closed bins: ceil(c * B) - 1, clipped so that c = 0 goes to bin 0.
    bins = np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
    error = 0.0
    for index in range(num_bins):
        members = bins == index
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def classification_metrics(logits, labels, num_bins=ECE_BINS):
    """Every metric of the paper's set in one flat dict.

    Top-k accuracy is reported only for `k < num_classes` (for k >= K it is
    trivially 1); top-1 always.
    """
    logits, labels = _check(logits, labels)
    num_classes = logits.shape[1]
    results = {"num_examples": int(len(labels)), "num_classes": int(num_classes)}
    for k in TOP_K:
        if k == 1 or k < num_classes:
            results[f"top{k}_accuracy"] = top_k_accuracy(logits, labels, k)
    results.update(precision_recall_f1(logits, labels))
    results["nll"] = negative_log_likelihood(logits, labels)
    results["ece"] = expected_calibration_error(logits, labels, num_bins)
    results["ece_bins"] = int(num_bins)
    results["confidence_mean"], results["confidence_std"] = confidence_stats(logits)
    results["predictive_entropy_mean"] = predictive_entropy(logits)
    return results
