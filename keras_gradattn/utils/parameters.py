import math


def count_parameters(model, trainable_only=True):
    """Number of scalar parameters; by default only trainable ones, as the
    reference counts them (BatchNorm moving statistics are not parameters)."""
    weights = model.trainable_weights if trainable_only else model.weights
    return sum(math.prod(weight.shape) for weight in weights)
