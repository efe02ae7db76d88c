"""keras_gradattn.benchmarks timing: a training call counts until its fit's on_train_end, other calls
until they return."""

import time

import keras
import numpy as np

from keras_gradattn import benchmarks


def test_plain_function_is_timed_until_it_returns():
    def sleep():
        time.sleep(0.05)

    assert 0.05 <= benchmarks.call_seconds(sleep) < 1.0


def test_training_call_is_timed_until_on_train_end_not_fits_return():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    images = np.zeros((8, 4), "float32")
    labels = np.zeros((8,), "int32")
    train = benchmarks.training_function(model, images, labels, steps=2)
    assert train.last_train_end is None

    def slow_return():
        # What happens after on_train_end (fit returning) is left out.
        history = train()
        time.sleep(1.0)
        return history

    slow_return.last_train_end = None
    start = time.perf_counter()
    train()
    assert start <= train.last_train_end <= time.perf_counter()
    # The wrapper does not carry the clock: it is timed until it returns.
    assert benchmarks.call_seconds(slow_return) >= 1.0
    slow_return.last_train_end = None

    def forwarded():
        result = slow_return()
        forwarded.last_train_end = train.last_train_end
        return result

    assert benchmarks.call_seconds(forwarded) < 1.0
    # Three calls of two steps each: fit ran the batch repeated `steps` times.
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 6


def test_a_clock_left_from_an_earlier_call_is_ignored():
    def function():
        time.sleep(0.05)

    function.last_train_end = time.perf_counter() - 10.0
    assert 0.05 <= benchmarks.call_seconds(function) < 1.0


def test_median_call_seconds_skips_the_first_call():
    calls = []

    def function():
        calls.append(None)
        # The untimed call and the first timed one are slow: counting the
        # untimed call would make two of three timed calls slow.
        time.sleep(0.2 if len(calls) <= 2 else 0.01)

    assert benchmarks.median_call_seconds(function, repeats=3) < 0.2
    assert len(calls) == 4
