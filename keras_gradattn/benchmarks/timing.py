"""Throughput measurement of models and input pipelines: warm-up excluded,
interleaved rounds, medians. No backend-specific code."""

import dataclasses
import statistics
import time

import numpy as np


@dataclasses.dataclass
class Measurement:
    """Wall-clock times of repeated calls that each process the same number
    of images."""

    name: str
    images_per_call: int
    call_times: list

    @property
    def median_call_time(self):
        return statistics.median(self.call_times)

    @property
    def images_per_second(self):
        return self.images_per_call / self.median_call_time

    @property
    def spread(self):
        """(max - min) / median of the per-round times: the noise."""
        return (max(self.call_times) - min(self.call_times)) / self.median_call_time


def synthetic_batch(batch_size, input_shape, num_classes, seed=0):
    """Standard-normal float32 images and uniform int32 labels: throughput
    does not depend on the values, and a fixed seed gives every run the same batch."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch_size, *input_shape), dtype=np.float32)
    labels = rng.integers(0, num_classes, size=batch_size).astype("int32")
    return images, labels


def call_seconds(function):
    """Wall-clock seconds of one call of `function`.

    A function from `training_function` counts until its `fit` reached
    `on_train_end`, when the steps are done and their logs read back: what
    `fit` does after that, while it returns, is left out. Under TensorFlow
    that return took another 0.7-1.2 s in most calls of 5 steps (whose steps
    took 1.2-1.9 s) and nothing in calls longer than about 2.6 s
    (docs/benchmarks.md): a cost of short timed calls that a training epoch
    does not pay.
    """
    start = time.perf_counter()
    function()
    end = time.perf_counter()
    finished = getattr(function, "last_train_end", None)
    if finished is not None and start <= finished <= end:
        return finished - start
    return end - start


def median_call_seconds(function, repeats):
    """Median seconds (`call_seconds`) of `repeats` calls of `function`, after
    one untimed call (compilation, tracing, allocation)."""
    function()
    return statistics.median(call_seconds(function) for _ in range(repeats))


def measure_interleaved(functions, images_per_call, warmup_calls=1, rounds=7,
                        progress=None):
    """Times several functions round-robin.

    Each round calls every function once, in turn, so a slow spell of a
    shared machine hits all of them alike and their ratios stay meaningful.
    The first `warmup_calls` calls of each function (compilation,
    allocation) are not timed. Each function must return only when its work
    is done on the device.

    Args:
        functions: `{name: zero-argument callable}`.
        images_per_call: images each call processes.
        progress: optional callable taking a one-line status string.

    Returns:
        `{name: Measurement}` with one time per round.
    """
    for name, function in functions.items():
        if progress:
            progress(f"warming up {name}")
        for _ in range(warmup_calls):
            function()
    call_times = {name: [] for name in functions}
    for round_index in range(rounds):
        if progress:
            progress(f"round {round_index + 1}/{rounds}")
        for name, function in functions.items():
            call_times[name].append(call_seconds(function))
    return {
        name: Measurement(name, images_per_call, times)
        for name, times in call_times.items()
    }


def training_function(model, images, labels, steps):
    """`steps` optimizer steps through `model.fit`, the path users train on.

    Per-call APIs such as `train_on_batch` also pay Keras' per-call costs
    (on JAX, copying every variable's state back after each call), which
    grow with the number of variables rather than with the work of a step.
    `fit` pays those once per epoch; one epoch of `steps` batches amortises
    them as training does. The returned function records when each call's
    `fit` reached `on_train_end` as `last_train_end` (`call_seconds` reads it).
    """
    import keras

    batch_size = len(images)
    repeated_images = np.concatenate([images] * steps)
    repeated_labels = np.concatenate([labels] * steps)

    class TrainEndClock(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            train.last_train_end = time.perf_counter()

    clock = TrainEndClock()

    def train():
        # `fit` reaches on_train_end after the epoch's logs are read back: work is done.
        return model.fit(repeated_images, repeated_labels, batch_size=batch_size,
                         epochs=1, shuffle=False, verbose=0, callbacks=[clock])

    train.last_train_end = None
    return train


def device_resident_model(classifier, num_images, seed=0):
    """`classifier` inside a `data.DeviceDataModel` holding `num_images`
    random uint8 images of its input shape (no augmentation): a training
    step fed by row indices, as `--data-placement device` trains."""
    from keras_gradattn.data import DeviceDataModel

    shape = tuple(classifier.input_shape[1:])
    model = DeviceDataModel(classifier, num_images, shape, shape, [0.5] * shape[-1], [0.25] * shape[-1])
    model.set_images(np.random.default_rng(seed).integers(0, 256, (num_images, *shape), dtype=np.uint8))
    return model


def inference_function(model, images, steps):
    """`steps` forward passes in inference mode through `model.predict`."""
    batch_size = len(images)
    repeated_images = np.concatenate([images] * steps)

    def infer():
        return model.predict(repeated_images, batch_size=batch_size, verbose=0)

    return infer


def pipeline_function(dataset, num_batches):
    """A zero-argument callable that pulls `num_batches` batches (as NumPy, as
    `fit` would hand them to the model) from one persistent iterator."""
    from keras_gradattn.data.pipeline import _iterate_batches

    batches = _iterate_batches(dataset)

    def pull():
        for _ in range(num_batches):
            images, _ = next(batches)
            np.asarray(images)

    return pull
