"""GradientNormLogger: per-layer gradient norms of the real training step, in TensorBoard."""

import os
import tempfile
import warnings

import keras
import numpy as np
from keras import ops

from keras_gradattn.callbacks.optimizer_hook import REDUCTIONS
from keras_gradattn.callbacks.optimizer_hook import GradientNormRecorder
from keras_gradattn.callbacks.optimizer_hook import innermost_optimizer
from keras_gradattn.callbacks.optimizer_hook import installed_recorder
from keras_gradattn.callbacks.optimizer_hook import squared_norm
from keras_gradattn.callbacks.summary_writer import IMPLEMENTATIONS as WRITER_IMPLEMENTATIONS
from keras_gradattn.callbacks.summary_writer import create_summary_writer
from keras_gradattn.callbacks.tensorboard_layout import gradient_flow_layout
from keras_gradattn.callbacks.tensorboard_layout import layout_summary
from keras_gradattn.utils import atomic_write_json
from keras_gradattn.utils import keras_internals
from keras_gradattn.utils import register_serializable
from keras_gradattn.utils import trained_classifier

LAYOUT_FILE_NAME = "gradient_norm_layout.json"


@register_serializable
class GradientNormLogger(keras.callbacks.Callback):
    """Logs per-layer gradient norms of the gradients the optimizer applies.

    The norms come from the training step itself (the optimizer is hooked, see
    `keras_gradattn.callbacks.optimizer_hook`): no extra forward or backward
    pass. They are measured after loss-scale unscaling and before clipping.
    Works with plain `model.fit` on TensorFlow, JAX and PyTorch, and with a
    user `train_step` that calls `optimizer.apply` or `apply_gradients`.

    TensorBoard tags (in `log_dir`, open with `tensorboard --logdir log_dir`):
    - `grad_norm/<layer path>`: L2 norm over the layer's trainable variables
      (a variable `stage2/block1/conv1/kernel` counts for `stage2/block1/conv1`);
    - `grad_norm_stage/<first path component>` and `grad_norm_global`;
    - `learning_rate` at every log step;
    - `weight_norm/<layer path>`, `weight_norm_global` at every epoch end;
    - `grad_hist/<variable path>` (with `histograms=True`): the values of the
      last applied gradient of each variable;
    - `depth_attention/layer<i>/<token>` once per epoch, for models with a
      `depth_attention(images)` method: the attention each depth token
      receives in encoder layer i (1-based, as the encoder names its layers;
      mean over examples and query positions). Tokens are named by the
      model's `tap_names` (`stem`, `stage1`, ...), else `token1`, `token2`...
    - `connection/<stage>/<block>/<parameter>` once per epoch, for models
      whose backbone has learned skip connections (docs/design_space.md):
      ReZero's `alpha`, LayerScale's `gamma_mean`, DWA's `weight_<source>`,
      hyper-connections' `width_<i>` and `depth_<i>`, and, measured on
      `attention_batch`, Highway's `gate_mean` and AttnRes'
      `weight_<source>` (mean over the examples).
    The step of every value is the optimizer's iteration count when `fit`
    began (after `keras.callbacks.BackupAndRestore` restored it, when the
    run resumes) plus the training batches of this `fit`; gradient norms are
    logged at the steps that are multiples of `update_freq`, and at the end
    of training.
    `log_dir/gradient_norm_layout.json` lists layers and stages in model
    order, for the analysis script. Each event file also holds a layout for
    TensorBoard's Custom Scalars tab (`keras_gradattn.callbacks.
    tensorboard_layout`): the stages' gradient norms in one chart, the global
    norm beside the learning rate in another, and one chart of depth
    attention per encoder layer.

    Args:
        log_dir: directory for the event files.
        update_freq: log every this many training steps, or `"epoch"`.
        histograms: also log histograms of each variable's last applied
            gradient. Keeps a float32 copy of all gradients in the optimizer
            while training (memory of one more copy of the weights).
        weight_norms: also log per-layer weight norms at each epoch end
            (weights change slowly, and computing the norms is one small
            eager op per variable: too dear to repeat at every step).
        reduction: how the steps between two log steps are summarized:
            `"mean"` of the per-step norms (default: every step counts),
            `"max"` (keeps spikes), or the `"last"` step's norms.
        attention_batch: images (array), an `(images, labels)` tuple, or a
            dataset / iterable whose first batch is used, for the per-epoch
            depth attention and the input-dependent connection values (e.g. your
            validation data).
        attention_examples: at most this many images of `attention_batch`.
        writer: `"auto"` (default), `"python"` or `"tensorflow"`: how event
            files are written, see `keras_gradattn.callbacks.summary_writer`.
    """

    def __init__(
        self,
        log_dir,
        update_freq=100,
        histograms=False,
        weight_norms=True,
        reduction="mean",
        attention_batch=None,
        attention_examples=32,
        writer="auto",
    ):
        super().__init__()
        if isinstance(update_freq, bool) or not (
            update_freq == "epoch" or (isinstance(update_freq, int) and update_freq > 0)
        ):
            raise ValueError(
                f"update_freq must be a positive number of steps or 'epoch'; received {update_freq!r}"
            )
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}; received {reduction!r}")
        if isinstance(attention_examples, bool) or not (
            isinstance(attention_examples, int) and attention_examples > 0
        ):
            raise ValueError(
                f"attention_examples must be a positive integer; received {attention_examples!r}"
            )
        if writer not in WRITER_IMPLEMENTATIONS:
            raise ValueError(f"writer must be one of {WRITER_IMPLEMENTATIONS}; received {writer!r}")
        self.log_dir = os.fspath(log_dir)
        self.writer = writer
        self.update_freq = update_freq
        self.histograms = histograms
        self.weight_norms = weight_norms
        self.reduction = reduction
        self.attention_batch = attention_batch
        self.attention_examples = attention_examples
        # What was written, for programmatic use: one entry per log step of
        # gradient norms, and one per epoch (weight norms, depth attention).
        self.records = []
        self.epoch_records = []
        self._recorder = None
        self._writer = None
        self._attention_images = None
        self._warned_no_attention_batch = False

    # Keras callback hooks ---------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                f"GradientNormLogger needs a compiled model with an optimizer; received model {model.name!r} with none"
            )
        # TensorFlow's fit builds an unbuilt model while tracing the first
        # step (the hook then sets itself up inside that trace); the other
        # backends build it before callbacks run.
        if model.built and not model.trainable_variables:
            raise self._no_trainable_weights_error(model)
        self._check_log_dir()
        self._remove_stale_hook(model, optimizer)
        if model.trainable_variables and not optimizer.built:
            optimizer.build(model.trainable_variables)

        self._recorder = GradientNormRecorder(
            optimizer, model, reduction=self.reduction, keep_gradients=self.histograms
        )
        self._recorder.install()
        try:
            # fit() gives each run a new History: it tells this run's hook
            # from one an interrupted run left behind.
            self._recorder.fit_token = getattr(model, "history", None)
            # fit() made (and may have traced, in an earlier fit) the train
            # function before callbacks ran: make it again with the hook in it.
            model.make_train_function(force=True)
        except BaseException:
            self.detach()
            raise
        # Read at the first epoch begin: `BackupAndRestore` restores the
        # optimizer's iteration count in its own on_train_begin, which may
        # run after this one.
        self._step_offset = None
        self._layout_written = False
        self._steps_done = 0
        self._epoch_first_step = 0
        self._last_begun_batch = None
        self._last_logged = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self._step_offset is None:
            self._step_offset = self._optimizer_step()
        self._epoch_first_step = self._steps_done
        self._last_begun_batch = None

    def on_train_batch_begin(self, batch, logs=None):
        # Reading happens at the start of the next batch, not at batch end:
        # overriding on_train_batch_end would switch off Keras' asynchronous
        # callback dispatch and force a device sync on every step.
        self._last_begun_batch = batch
        self._log_window_if_due(self._epoch_first_step + batch)

    def on_epoch_end(self, epoch, logs=None):
        steps_in_epoch = self.params.get("steps") if self.params else None
        if not steps_in_epoch:
            # Unknown epoch length: the last batch begun plus one execution.
            steps_per_execution = getattr(self.model, "steps_per_execution", 1) or 1
            steps_in_epoch = (self._last_begun_batch or 0) + steps_per_execution
        self._steps_done = self._epoch_first_step + steps_in_epoch
        step = self._step_offset + self._steps_done
        if self.update_freq == "epoch":
            self._log_window(step)
            self._last_logged = self._steps_done
        else:
            # A window that ends with the epoch is logged now, not at the next
            # batch begin: the epoch end syncs anyway, and a backup made at
            # this epoch end must not leave the window to be lost in a crash.
            self._log_window_if_due(self._steps_done)
        epoch_record = {"epoch": epoch, "step": step}
        if self.weight_norms:
            self._log_weight_norms(step, epoch_record)
        self._log_depth_attention(step, epoch_record)
        self._log_connection_parameters(step, epoch_record)
        if len(epoch_record) > 2:
            self.epoch_records.append(epoch_record)
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, logs=None):
        try:
            if self._recorder is not None and self._recorder.installed and self._step_offset is not None:
                # The steps since the last log step, so that none is lost.
                self._log_window(self._step_offset + self._steps_done)
        finally:
            self.detach()

    # Public helpers -----------------------------------------------------------

    def detach(self):
        """Removes the optimizer hook and its variables and closes the writer.

        Called by `on_train_end`. Call it yourself after a `fit` that stopped
        with an exception, before saving the model (Keras skips
        `on_train_end` then; the next GradientNormLogger also cleans up).
        """
        if self._recorder is not None and self._recorder.installed:
            self._recorder.uninstall()
            model = keras_internals.callback_model_as_set(self)
            if model is not None:
                # The cached train function contains the hook.
                model.train_function = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def get_config(self):
        # attention_batch is data, not configuration.
        return {
            "log_dir": self.log_dir,
            "update_freq": self.update_freq,
            "histograms": self.histograms,
            "weight_norms": self.weight_norms,
            "reduction": self.reduction,
            "attention_examples": self.attention_examples,
            "writer": self.writer,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # Internals ----------------------------------------------------------------

    def _check_log_dir(self):
        try:
            os.makedirs(self.log_dir, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.log_dir):
                pass
        except OSError as error:
            raise ValueError(
                f"log_dir must be a writable directory; received {self.log_dir!r} ({error.strerror or error})"
            ) from None

    @property
    def layout(self):
        """The `GradientLayout` (layers and stages) of the model being trained."""
        return self._recorder.layout if self._recorder is not None else None

    @staticmethod
    def _no_trainable_weights_error(model):
        return ValueError(
            f"GradientNormLogger needs a model with trainable weights; received model {model.name!r} with 0 trainable variables"
        )

    def _write_layout(self):
        atomic_write_json(
            os.path.join(self.log_dir, LAYOUT_FILE_NAME),
            dict(
                self.layout.to_dict(),
                reduction=self.reduction,
                update_freq=self.update_freq,
                # Depth order of the `depth_attention/` tags, for the analysis.
                depth_tokens=list(getattr(self._classifier, "tap_names", None) or []),
            ),
        )
        self._layout_written = True

    def _remove_stale_hook(self, model, optimizer):
        existing = installed_recorder(optimizer)
        if existing is None:
            return
        fit_token = getattr(model, "history", None)
        if fit_token is not None and getattr(existing, "fit_token", None) is fit_token:
            raise ValueError(
                "Use one GradientNormLogger per model and fit; received a second one "
                f"(log_dir={self.log_dir!r}) beside the one already hooked into the optimizer"
            )
        # Left behind by a fit that stopped with an exception (no on_train_end).
        existing.uninstall()

    def _get_writer(self):
        if self._writer is None:
            self._writer = create_summary_writer(self.log_dir, implementation=self.writer)
            # Once per event file (a resumed run writes a new file), so that
            # TensorBoard's Custom Scalars tab finds it whatever files it reads.
            layout = gradient_flow_layout(encoder_layers=self._logged_encoder_layers())
            self._writer.summary(layout_summary(layout), self._step_offset or 0)
        return self._writer

    def _logged_encoder_layers(self):
        """How many encoder layers get depth_attention tags: 0 when none will,
        None when the model does not say (`num_layers`)."""
        if self.attention_batch is None or not callable(getattr(self._classifier, "depth_attention", None)):
            return 0
        num_layers = getattr(self._classifier, "num_layers", None)
        if isinstance(num_layers, int) and not isinstance(num_layers, bool) and num_layers > 0:
            return num_layers
        return None

    @property
    def _classifier(self):
        # What the model trains (a training wrapper's classifier): the one
        # with depth tokens, attention and a backbone to read.
        return trained_classifier(self.model)

    def _optimizer_step(self):
        optimizer = innermost_optimizer(self.model.optimizer)
        return int(np.asarray(keras_internals.optimizer_apply_count(optimizer).numpy()))

    def _log_window_if_due(self, done):
        """Logs the window when the optimizer's step count has reached a new
        multiple of `update_freq` (`done`: steps of this `fit`). Log steps are
        multiples of `update_freq` of the whole training, so a resumed or
        continued run logs at the steps an uninterrupted one would."""
        if self.update_freq == "epoch":
            return
        step = self._step_offset + done
        if step // self.update_freq > (self._step_offset + self._last_logged) // self.update_freq:
            self._log_window(step)
            self._last_logged = done

    def _log_window(self, step):
        model = self.model  # Under JAX this attaches the latest state to the variables.
        result = self._recorder.read()
        if result is None:
            if not self._recorder.ready and not model.trainable_variables:
                raise self._no_trainable_weights_error(model)
            return
        if not self._layout_written:
            self._write_layout()
        values, steps_in_window = result
        per_layer, per_stage, global_norm = self.layout.split(values)
        writer = self._get_writer()
        for layer, value in per_layer.items():
            writer.scalar(f"grad_norm/{layer}", value, step)
        for stage, value in per_stage.items():
            writer.scalar(f"grad_norm_stage/{stage}", value, step)
        writer.scalar("grad_norm_global", global_norm, step)
        learning_rate = float(np.asarray(ops.convert_to_numpy(model.optimizer.learning_rate)))
        writer.scalar("learning_rate", learning_rate, step)
        record = {
            "step": step,
            "steps_in_window": steps_in_window,
            "grad_norm": per_layer,
            "grad_norm_stage": per_stage,
            "grad_norm_global": global_norm,
            "learning_rate": learning_rate,
        }
        if self.histograms:
            for variable, gradient in zip(self._recorder.variables, self._recorder.read_last_gradients()):
                writer.histogram(f"grad_hist/{variable.path}", gradient, step)
        self.records.append(record)

    def _log_weight_norms(self, step, record):
        if not self._recorder.ready:
            return
        weight_layers, _, weight_global = self.layout.split(self._weight_norms())
        writer = self._get_writer()
        for layer, value in weight_layers.items():
            writer.scalar(f"weight_norm/{layer}", value, step)
        writer.scalar("weight_norm_global", weight_global, step)
        record.update(weight_norm=weight_layers, weight_norm_global=weight_global)

    def _weight_norms(self):
        variables = self._recorder.variables
        squared = ops.stack([squared_norm(ops.cast(variable, "float32")) for variable in variables])
        squared = np.asarray(ops.convert_to_numpy(squared), dtype="float64")
        return np.sqrt(squared @ self.layout.assignment())

    def _log_depth_attention(self, step, record):
        depth_attention = getattr(self._classifier, "depth_attention", None)
        if not callable(depth_attention):
            return
        images = self._get_attention_images()
        if images is None:
            if not self._warned_no_attention_batch:
                self._warned_no_attention_batch = True
                warnings.warn(
                    "GradientNormLogger: the model has depth_attention() but no attention_batch "
                    "was given; pass attention_batch=<validation images or dataset> to log it.",
                    stacklevel=2,
                )
            return
        attention = np.asarray(ops.convert_to_numpy(depth_attention(images)), dtype="float64")
        if attention.ndim != 4 or attention.shape[2] != attention.shape[3]:
            raise ValueError(
                "depth_attention(images) must return (batch, encoder_layers, tokens, tokens); "
                f"received shape {attention.shape}"
            )
        # Attention each key token receives: mean over examples and queries.
        received = attention.mean(axis=(0, 2))
        writer = self._get_writer()
        tokens = self._depth_token_names(received.shape[1])
        for layer_index, row in enumerate(received, start=1):
            for token, value in zip(tokens, row):
                writer.scalar(f"depth_attention/layer{layer_index}/{token}", value, step)
        record["depth_attention"] = received.tolist()
        record["depth_tokens"] = tokens

    def _log_connection_parameters(self, step, record):
        backbone = getattr(self._classifier, "backbone", None)
        connection_parameters = getattr(backbone, "connection_parameters", None)
        if not callable(connection_parameters):
            return
        values = connection_parameters(self._get_attention_images())
        if not values:
            return
        writer = self._get_writer()
        for key, value in values.items():
            writer.scalar(f"connection/{key}", value, step)
        record["connection"] = values

    def _depth_token_names(self, count):
        names = list(getattr(self._classifier, "tap_names", None) or [])
        if len(names) != count:
            names = [f"token{index}" for index in range(1, count + 1)]
        return names

    def _get_attention_images(self):
        if self._attention_images is None and self.attention_batch is not None:
            batch = self.attention_batch
            # A tuple is (images, labels[, weights]); an array is images;
            # anything else (dataset, generator, list of batches) yields batches.
            if not _is_array(batch) and not isinstance(batch, (tuple, dict)):
                batch = next(iter(batch))
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            if hasattr(batch, "numpy"):  # a TensorFlow tensor from tf.data
                batch = batch.numpy()
            self._attention_images = np.asarray(batch)[: self.attention_examples]
        return self._attention_images


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")
