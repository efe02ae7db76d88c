"""GradientNormLogger: the logged norms are those of the gradients the real
train step applies, on every backend and training configuration."""

import os

import keras
import numpy as np
import pytest
from gradflow_testing import assert_norms_close
from gradflow_testing import build_functional_model
from gradflow_testing import group_norms
from gradflow_testing import loss_object
from gradflow_testing import make_data
from gradflow_testing import reference_gradients

from keras_gradattn.analysis.event_reader import read_events
from keras_gradattn.callbacks import GradientNormLogger
from keras_gradattn.callbacks.gradient_layout import GradientLayout

BACKEND = keras.backend.backend()


def fit_one_step(model, x, y, log_dir, **logger_kwargs):
    """One optimizer step on the whole batch; returns the logger."""
    logger = GradientNormLogger(log_dir, update_freq=1, reduction="last", **logger_kwargs)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, callbacks=[logger])
    return logger


def compile_model(model, optimizer=None, **compile_kwargs):
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), loss=loss_object(), **compile_kwargs)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_logged_norms_equal_backend_autodiff(tmp_path, jit_compile):
    model = build_functional_model()
    compile_model(model, jit_compile=jit_compile)
    x, y = make_data()
    expected = group_norms(GradientLayout.from_model(model), reference_gradients(model, x, y))

    logger = fit_one_step(model, x, y, tmp_path)

    assert len(logger.records) == 1
    record = logger.records[0]
    assert record["step"] == 1 and record["steps_in_window"] == 1
    assert_norms_close(record, expected)
    assert set(record["grad_norm"]) == {
        "stage1/block1/dense",
        "stage1/block1/norm",
        "stage1/block2/dense",
        "stage1/block2/norm",
        "stage2/block1/dense",
        "stage2/block1/norm",
        "stage2/block2/dense",
        "stage2/block2/norm",
        "head",
    }
    assert set(record["grad_norm_stage"]) == {"stage1", "stage2", "head"}


def test_norms_are_measured_before_clipping(tmp_path):
    model = build_functional_model()
    compile_model(model, keras.optimizers.SGD(0.1, global_clipnorm=1e-4))
    x, y = make_data()
    expected = group_norms(GradientLayout.from_model(model), reference_gradients(model, x, y))
    logger = fit_one_step(model, x, y, tmp_path)
    assert expected[2] > 1e-2  # far above the clip norm
    assert_norms_close(logger.records[0], expected)


def test_optimizer_loss_scale_factor_is_divided_out(tmp_path):
    model = build_functional_model()
    compile_model(model, keras.optimizers.Adam(1e-3, loss_scale_factor=256.0))
    x, y = make_data()
    expected = group_norms(GradientLayout.from_model(model), reference_gradients(model, x, y))
    logger = fit_one_step(model, x, y, tmp_path)
    assert_norms_close(logger.records[0], expected)


@pytest.fixture
def mixed_precision(request):
    keras.mixed_precision.set_dtype_policy(request.param)
    yield request.param
    keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.parametrize("mixed_precision", ["mixed_float16"], indirect=True)
def test_mixed_float16_norms_are_unscaled(tmp_path, mixed_precision):
    model = build_functional_model()
    compile_model(model, keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    x, y = make_data()
    expected = group_norms(GradientLayout.from_model(model), reference_gradients(model, x, y))
    logger = fit_one_step(model, x, y, tmp_path)
    # float16 arithmetic: scaled and unscaled gradients round a little
    # differently (measured up to 1e-4 relative under JAX); a value left
    # scaled by mistake would be 2**15 times larger.
    assert_norms_close(logger.records[0], expected, rtol=1e-3)
    # The hook lives on the inner optimizer and is gone after training.
    assert not [v.path for v in model.optimizer.variables if "gradient_norm" in v.path]


@pytest.mark.parametrize("mixed_precision", ["mixed_bfloat16"], indirect=True)
def test_mixed_bfloat16(tmp_path, mixed_precision):
    model = build_functional_model()
    compile_model(model, keras.optimizers.Adam(1e-3))
    x, y = make_data()
    expected = group_norms(GradientLayout.from_model(model), reference_gradients(model, x, y))
    logger = fit_one_step(model, x, y, tmp_path)
    # Same bfloat16 computation on both sides (measured within 1e-7).
    assert_norms_close(logger.records[0], expected, rtol=1e-4)


def test_gradient_accumulation_logs_the_applied_mean(tmp_path):
    model = build_functional_model(batchnorm=False)
    compile_model(model, keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
    x, y = make_data(16)
    layout = GradientLayout.from_model(model)
    first = reference_gradients(model, x[:8], y[:8])
    second = reference_gradients(model, x[8:], y[8:])
    expected = group_norms(layout, [(a + b) / 2 for a, b in zip(first, second)])

    logger = GradientNormLogger(tmp_path, update_freq=1, reduction="last")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[logger])

    # Two micro-batches, one applied update: one record, one step in it.
    assert len(logger.records) == 1
    assert logger.records[0]["steps_in_window"] == 1
    assert_norms_close(logger.records[0], expected)


def test_mean_reduction_averages_the_steps_between_log_steps(tmp_path):
    model = build_functional_model(batchnorm=False)
    compile_model(model, keras.optimizers.SGD(0.0))  # weights stay: gradients are predictable
    x, y = make_data(24)
    layout = GradientLayout.from_model(model)
    per_batch = [group_norms(layout, reference_gradients(model, x[i : i + 8], y[i : i + 8])) for i in (0, 8, 16)]

    logger = GradientNormLogger(tmp_path, update_freq=3, reduction="mean")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[logger])
    maximum = GradientNormLogger(tmp_path / "max", update_freq=3, reduction="max")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[maximum])

    assert [r["step"] for r in logger.records] == [3]
    assert [r["step"] for r in maximum.records] == [6]
    assert logger.records[0]["steps_in_window"] == 3
    expected_mean = np.mean([norms[2] for norms in per_batch])
    np.testing.assert_allclose(logger.records[0]["grad_norm_global"], expected_mean, rtol=1e-5)
    expected_max = np.max([norms[2] for norms in per_batch])
    np.testing.assert_allclose(maximum.records[0]["grad_norm_global"], expected_max, rtol=1e-5)


def test_update_freq_steps_and_epoch(tmp_path):
    model = build_functional_model(dropout=0.2)
    compile_model(model, keras.optimizers.Adam(1e-3))
    x, y = make_data(40)
    every_4 = GradientNormLogger(tmp_path / "a", update_freq=4)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[every_4])
    # 5 steps per epoch, 10 in all: windows end at 4, 8 and (train end) 10.
    assert [r["step"] for r in every_4.records] == [4, 8, 10]
    assert [r["steps_in_window"] for r in every_4.records] == [4, 4, 2]
    # A second fit continues the step count from the optimizer's iterations.
    per_epoch = GradientNormLogger(tmp_path / "b", update_freq="epoch")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[per_epoch])
    assert [r["step"] for r in per_epoch.records] == [15, 20]
    assert [r["steps_in_window"] for r in per_epoch.records] == [5, 5]


def test_every_fit_traces_the_hook_and_leaves_no_trace(tmp_path):
    model = build_functional_model()
    compile_model(model, keras.optimizers.Adam(1e-3))
    x, y = make_data()
    # A first fit without the logger caches a train function without the hook.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    optimizer_variables = len(model.optimizer.variables)
    expected = group_norms(GradientLayout.from_model(model), reference_gradients(model, x, y))

    logger = fit_one_step(model, x, y, tmp_path)

    assert_norms_close(logger.records[0], expected)
    assert len(model.optimizer.variables) == optimizer_variables
    assert "apply" not in vars(model.optimizer)
    assert model.train_function is None
    # Training without the logger afterwards works and records nothing.
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert len(logger.records) == 1


def test_saved_models_load_without_optimizer_warnings(tmp_path, recwarn, caplog):
    model = build_functional_model(dropout=0.1)
    compile_model(model, keras.optimizers.Adam(1e-3))
    x, y = make_data()
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "during.keras"), save_freq=2)
    logger = GradientNormLogger(tmp_path / "logs", update_freq=2)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[logger, checkpoint])
    model.save(tmp_path / "after.keras")
    recwarn.clear()

    for name in ("during.keras", "after.keras"):
        loaded = keras.models.load_model(tmp_path / name)
        assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
        loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)  # the optimizer state is usable

    messages = [str(w.message) for w in recwarn] + [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "optimizer" in m.lower() or "variables" in m.lower()], messages
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        assert a.shape == b.shape


def test_interrupted_fit_is_cleaned_up(tmp_path):
    model = build_functional_model()
    compile_model(model, keras.optimizers.Adam(1e-3))
    x, y = make_data()
    model.optimizer.build(model.trainable_variables)
    optimizer_variables = len(model.optimizer.variables)

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    logger = GradientNormLogger(tmp_path, update_freq=1)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[logger, Interrupt()])
    # Keras skipped on_train_end: the hook is still there until detach().
    assert "apply" in vars(model.optimizer)
    assert len(model.optimizer.variables) > optimizer_variables
    # A new logger cleans up what the interrupted one left.
    second = fit_one_step(model, x, y, tmp_path / "second")
    assert len(second.records) == 1
    assert len(model.optimizer.variables) == optimizer_variables
    logger.detach()  # harmless now
    assert "apply" not in vars(model.optimizer)


def test_two_loggers_in_one_fit_are_refused(tmp_path):
    model = build_functional_model()
    compile_model(model)
    x, y = make_data()
    loggers = [GradientNormLogger(tmp_path / "a"), GradientNormLogger(tmp_path / "b")]
    with pytest.raises(ValueError, match="one GradientNormLogger per model"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=loggers)
    loggers[0].detach()


@pytest.mark.parametrize("writer", ["auto", "tensorflow"])
def test_tensorboard_event_files_hold_the_expected_tags(tmp_path, writer):
    if writer == "tensorflow":
        pytest.importorskip("tensorflow")
    model = build_functional_model()
    compile_model(model, keras.optimizers.Adam(1e-3))
    x, y = make_data()
    logger = GradientNormLogger(tmp_path, update_freq=2, histograms=True, writer=writer)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[logger])

    events = read_events(tmp_path)
    assert events.event_files
    tags = set(events.scalars)
    assert "grad_norm/stage2/block1/dense" in tags
    assert "grad_norm_stage/stage2" in tags
    assert {"grad_norm_global", "learning_rate", "weight_norm_global"} <= tags
    assert "weight_norm/head" in tags
    assert events.scalars["weight_norm_global"][0].tolist() == [4]  # once per epoch
    assert "grad_hist/stage1/block1/dense/kernel" in events.histograms
    steps, values = events.scalars["grad_norm/stage2/block1/dense"]
    assert steps.tolist() == [2, 4]
    np.testing.assert_allclose(values, [r["grad_norm"]["stage2/block1/dense"] for r in logger.records], rtol=1e-6)
    np.testing.assert_allclose(events.scalars["learning_rate"][1], 1e-3, rtol=1e-6)
    assert os.path.exists(tmp_path / "gradient_norm_layout.json")
    # Weight norms at the epoch end: those of the final weights.
    head = [np.asarray(keras.ops.convert_to_numpy(v)) for v in model.get_layer("head").weights]
    expected_head = np.sqrt(sum(np.sum(np.square(w, dtype="float64")) for w in head))
    np.testing.assert_allclose(events.scalars["weight_norm/head"][1][-1], expected_head, rtol=1e-5)
    assert logger.epoch_records[-1]["weight_norm"]["head"] == pytest.approx(expected_head, rel=1e-5)


def test_histograms_hold_the_last_applied_gradient(tmp_path):
    model = build_functional_model()
    compile_model(model)
    x, y = make_data()
    gradients = reference_gradients(model, x, y)
    logger = GradientNormLogger(tmp_path, update_freq=1, histograms=True)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, callbacks=[logger])
    histograms = read_events(tmp_path).histograms
    for variable, gradient in zip(model.trainable_variables, gradients):
        (step, buckets), = histograms[f"grad_hist/{variable.path}"]
        assert step == 1
        assert buckets[:, 2].sum() == gradient.size
        np.testing.assert_allclose(buckets[0, 0], gradient.min(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(buckets[-1, 1], gradient.max(), rtol=1e-5, atol=1e-7)


class _StopBeforeEpoch(keras.callbacks.Callback):
    """Interrupts `fit` as a crash would: an exception, so no `on_train_end`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_resumed_fit_continues_the_step_count_of_the_backup(tmp_path):
    # The logger comes before BackupAndRestore, as in the training protocol:
    # its on_train_begin runs before the backup restores the optimizer's
    # iteration count, so that count must be read later.
    x, y = make_data(40)  # 5 steps per epoch
    fit_kwargs = dict(batch_size=8, epochs=4, shuffle=False, verbose=0)
    backup_dir = tmp_path / "backup"

    model = build_functional_model()
    compile_model(model, keras.optimizers.Adam(1e-3))
    first = GradientNormLogger(tmp_path / "logs", update_freq=2)
    backup = keras.callbacks.BackupAndRestore(backup_dir)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, callbacks=[first, backup, _StopBeforeEpoch(2)], **fit_kwargs)
    first.detach()

    model = build_functional_model()
    compile_model(model, keras.optimizers.Adam(1e-3))
    resumed = GradientNormLogger(tmp_path / "logs", update_freq=2)
    model.fit(x, y, callbacks=[resumed, keras.callbacks.BackupAndRestore(backup_dir)], **fit_kwargs)

    # Epochs 1-2 (steps 1-10) ran before the interruption, 3-4 (11-20) after.
    assert [record["step"] for record in first.records] == [2, 4, 6, 8, 10]
    assert [record["step"] for record in resumed.records] == [12, 14, 16, 18, 20]
    assert [record["step"] for record in resumed.epoch_records] == [15, 20]
    # Together: one value per log step, none written twice.
    events = read_events(tmp_path / "logs")
    steps, _ = events.scalars["grad_norm_global"]
    assert steps.tolist() == list(range(2, 21, 2))


def test_log_steps_are_multiples_of_update_freq_after_a_resume_mid_window(tmp_path):
    # A run resumed at step 5 logs at 6, 8, ...: the steps an uninterrupted
    # run logs at, so that the two processes' curves join without a gap.
    x, y = make_data(40)
    model = build_functional_model()
    compile_model(model, keras.optimizers.Adam(1e-3))
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    logger = GradientNormLogger(tmp_path, update_freq=2)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[logger])
    assert [record["step"] for record in logger.records] == [6, 8, 10]
    assert [record["steps_in_window"] for record in logger.records] == [1, 2, 2]
