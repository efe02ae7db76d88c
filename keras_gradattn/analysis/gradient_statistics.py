"""The paper's gradient-flow statistics, computed from per-layer gradient norms.

Section 7 of the reference: with `norm[i]` the mean L2 norm of the gradient of
layer i's output (layers in forward order),
- health score: fraction of layers with `vanishing < norm < exploding`
  (1e-6 and 10 in the paper);
- vanishing layers: `norm < 1e-6`; exploding layers: `norm > 10`;
- average decay rate: mean of `norm[i] / norm[i + 1]` over consecutive layers
  (a pair whose denominator is 0 has no finite ratio and is left out);
- bottleneck layers: `norm < mean(norm) - 2 * std(norm)` (population std).
"""

import numpy as np

VANISHING_THRESHOLD = 1e-6
EXPLODING_THRESHOLD = 10.0


def gradient_flow_statistics(
    layer_names, mean_norms, vanishing_threshold=VANISHING_THRESHOLD, exploding_threshold=EXPLODING_THRESHOLD
):
    """Returns the section-7 statistics of `mean_norms` as a JSON-ready dict."""
    names = list(layer_names)
    norms = np.asarray(mean_norms, dtype="float64")
    if norms.ndim != 1 or len(names) != norms.size:
        raise ValueError(
            f"mean_norms must be one value per layer; received shape {norms.shape} for {len(names)} layers"
        )
    if norms.size == 0:
        raise ValueError("gradient_flow_statistics needs at least one layer; received none")
    healthy = (norms > vanishing_threshold) & (norms < exploding_threshold)
    decay_rates = [
        float(numerator / denominator) if denominator > 0 else None
        for numerator, denominator in zip(norms[:-1], norms[1:])
    ]
    ratios = np.array([rate for rate in decay_rates if rate is not None])
    mean, std = float(norms.mean()), float(norms.std())
    bottleneck_threshold = mean - 2.0 * std
    return {
        "num_layers": int(norms.size),
        "health_score": float(healthy.mean()),
        "vanishing_threshold": vanishing_threshold,
        "exploding_threshold": exploding_threshold,
        "vanishing_layers": [name for name, norm in zip(names, norms) if norm < vanishing_threshold],
        "exploding_layers": [name for name, norm in zip(names, norms) if norm > exploding_threshold],
        "average_decay_rate": float(ratios.mean()) if ratios.size else None,
        # One entry per consecutive pair; None where norm[i + 1] is 0.
        "decay_rates": decay_rates,
        "mean_norm": mean,
        "std_norm": std,
        "bottleneck_threshold": bottleneck_threshold,
        "bottleneck_layers": [name for name, norm in zip(names, norms) if norm < bottleneck_threshold],
    }
