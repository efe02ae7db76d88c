"""TensorFlow: GradientTape differentiation, devices, and `tf.distribute`."""

import contextlib

import tensorflow as tf


def value_and_grad(fn, args):
    args = [tf.convert_to_tensor(arg) for arg in args]
    # Only the arguments are watched: the model's variables are read but their
    # gradients are not wanted, so the tape need not keep them.
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for arg in args:
            tape.watch(arg)
        value = fn(*args)
    # UnconnectedGradients.NONE (the default) gives None for arguments the
    # value does not depend on, which is the contract callers rely on.
    grads = tape.gradient(value, args)
    return value, list(grads)


def compute_devices():
    """TensorFlow's GPUs when it sees any (it places operations on them), else
    its CPU. Physical devices: listing them allocates no GPU memory."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return ["cpu:0"]
    names = []
    for index, gpu in enumerate(gpus):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(f"gpu:{index} ({details.get('device_name', 'GPU')})")
    return names


def with_static_shapes(step_function):
    # tf.function traces each input shape as its own static program already.
    return step_function


def applied_gradients(grads):
    """The gradients the replicas of a `tf.distribute` strategy apply, from
    one replica's: their sum over the replicas in sync (each replica's loss
    is already divided by the replica count, so the sum is the mean over the
    global batch, which the optimizer's own all-reduce forms later). Outside
    a strategy, or with one replica, the gradients come back unchanged."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(grads)
    return list(context.all_reduce(tf.distribute.ReduceOp.SUM, list(grads)))


def state_creation_scope(model):
    """The scope in which state that every replica of `model`'s step writes
    (the gradient-norm recorder's) must be created: `model`'s distribution
    strategy, entered when no strategy is active. A callback runs outside
    the strategy's scope; a variable created there is a plain one that
    every replica writes (under `MirroredStrategy` a step counter would
    count each step once per replica). Inside a strategy's scope or a
    replica's step the variable is created mirrored already."""
    if tf.distribute.has_strategy():
        return contextlib.nullcontext()
    return model.distribute_strategy.scope()


def batch_normalization_in_training(inputs, gamma, beta, epsilon):
    # TensorFlow's fused kernel (FusedBatchNormV3) was measured as this fast
    # path on a CPU and was no faster than Keras' portable ops (0.68x-0.99x,
    # results/benchmarks/fast_paths_tensorflow_cpu.md); with XLA on a GPU
    # the compiler fuses the portable ops.
    return None
