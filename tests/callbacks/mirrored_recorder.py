"""The gradient-norm recorder under an in-process `MirroredStrategy`; prints JSON.

Run by test_optimizer_hook.py in a subprocess, because TensorFlow's logical
CPUs must be configured before it starts:
    KERAS_BACKEND=tensorflow python mirrored_recorder.py
Two replicas on two logical CPUs train a Dense layer; the recorder is
installed outside the strategy's scope, as `GradientNormLogger` installs it
(in `on_train_begin`). The JSON line holds the steps each window counted,
the recorded global norms and the norm of the global batch's gradient.
"""

import json

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_gradattn.callbacks.optimizer_hook import GradientNormRecorder  # noqa: E402

BATCH = 8


def global_gradient_norm(model, images, targets):
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(targets, model(images))
    grads = tape.gradient(loss, model.trainable_variables)
    return float(np.sqrt(sum(float(tf.reduce_sum(grad * grad)) for grad in grads)))


def main():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
        # Learning rate 0: the weights stay put, so every step's gradient
        # norm is the one computed at the end on the same batch.
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    rng = np.random.default_rng(0)
    images = rng.normal(size=(BATCH, 3)).astype("float32")
    targets = rng.normal(size=(BATCH, 2)).astype("float32")
    recorder = GradientNormRecorder(model.optimizer, model)
    recorder.install()
    windows = []
    try:
        for repeats in (3, 1):
            # The same batch `repeats` times: one window of `repeats` steps.
            model.fit(
                np.tile(images, (repeats, 1)), np.tile(targets, (repeats, 1)),
                batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
            )  # fmt: skip
            values, steps = recorder.read()
            windows.append({"steps": steps, "global_norm": float(values[-1])})
        mirrored = type(recorder.window.value).__name__
    finally:
        recorder.uninstall()
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "windows": windows,
        "expected_global_norm": global_gradient_norm(model, images, targets),
        "window_variable": mirrored,
        "optimizer_variables_after_uninstall": len(model.optimizer.variables),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
