"""Records the norms of the gradients an optimizer applies, inside its own step.

`GradientNormRecorder.install()` replaces `apply` on the innermost optimizer
instance (the one a `LossScaleOptimizer` wraps) with a function that first
measures the gradients and then calls the original `apply`. Every train step
that reaches the optimizer goes through it: `fit`'s own `train_step` on every
backend (JAX reaches it through `stateless_apply`), and any user `train_step`
that calls `optimizer.apply` / `apply_gradients` / `stateless_apply`. No extra
forward or backward pass is made.

What is measured, and why there:
- `LossScaleOptimizer` divides by its dynamic scale before it calls the inner
  optimizer's `apply`, so the hooked gradients are already unscaled; a step it
  skips for non-finite gradients never reaches `apply` and is not recorded.
- An optimizer's own `loss_scale_factor` is divided out inside `apply`; the
  hook divides it out the same way.
- Clipping (`clipnorm`, `global_clipnorm`, `clipvalue`) and weight decay happen
  later, inside `_backend_apply_gradients`: the norms are those before clipping.
- With `gradient_accumulation_steps=k`, the optimizer applies the mean of k
  micro-batch gradients every k-th call; the hook records exactly that mean,
  on those calls only.
- Data parallelism: the norms are those of the gradient of the global
  batch, which every replica applies. JAX's `DataParallel` step computes it
  directly, and several PyTorch processes average theirs before `apply`
  (`keras_gradattn.training.torch_processes`). Under a TensorFlow strategy
  each replica's `apply` sees its own share, so the hook sums the shares
  over the replicas first (`keras_gradattn.backend.applied_gradients`): one
  all-reduce of the gradients per step more while the hook is installed.
  The recorder's variables are created in the model's strategy scope
  (`keras_gradattn.backend.state_creation_scope`), mirrored like the
  optimizer's own, even though the logger installs the hook from a callback,
  outside that scope: each step is then counted once, not once per replica.

The result lives in non-trainable variables created with
`optimizer.add_variable`, so that under JAX the stateless train step carries
them as optimizer state, and under TensorFlow and PyTorch they are plain
variable assignments inside the step. The training step never transfers
anything to the host; the callback reads one small vector when it logs.

The window vector holds, for G groups (layers, stages, global):
    [accumulated norms (G values), steps in window, reset flag]
The reset flag is set by `read()`; the next recorded step then starts a new
window. Reading and resetting thus need no step counter shared between the
callback and the compiled step, which keeps skipped steps, epochs and
`steps_per_execution` from ever misaligning the two.
"""

import warnings

import numpy as np
from keras import ops

from keras_gradattn import backend
from keras_gradattn.callbacks.gradient_layout import GradientLayout
from keras_gradattn.utils import keras_internals

REDUCTIONS = ("mean", "last", "max")

# The recorder's variables are written with the same value by every replica
# of a distribution strategy (the summed gradients): under TensorFlow's, a
# mirrored variable can be assigned inside a replica's step only with an
# aggregation, and this one keeps the first replica's value.
_SAME_ON_EVERY_REPLICA = "only_first_replica"

# Attribute set on a hooked optimizer: lets a later recorder find and undo a
# hook left behind by a fit that stopped with an exception (Keras does not
# call `on_train_end` then).
_RECORDER_ATTRIBUTE = "_gradattn_gradient_norm_recorder"


def innermost_optimizer(optimizer):
    """The optimizer that finally applies the gradients (through wrappers)."""
    while getattr(optimizer, "inner_optimizer", None) is not None:
        optimizer = optimizer.inner_optimizer
    return optimizer


def _optimizer_chain(optimizer):
    chain = [optimizer]
    while getattr(chain[-1], "inner_optimizer", None) is not None:
        chain.append(chain[-1].inner_optimizer)
    return chain


def installed_recorder(optimizer):
    """The recorder hooked into `optimizer`, or None."""
    return innermost_optimizer(optimizer).__dict__.get(_RECORDER_ATTRIBUTE)


class GradientNormRecorder:
    """Measures, inside the optimizer step, the norms of applied gradients.

    Args:
        optimizer: the model's optimizer (possibly a `LossScaleOptimizer`).
        model: the model; its trainable variables are grouped by layer and
            stage with `GradientLayout.from_model`.
        reduction: how steps between two reads are combined: `"mean"` of the
            per-step norms, `"max"`, or the `"last"` step's norms.
        keep_gradients: also keep a copy of the last applied gradient of every
            variable (for histograms; costs one extra copy of the weights).
    """

    def __init__(self, optimizer, model, reduction="mean", keep_gradients=False):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}; received {reduction!r}")
        self.optimizer = optimizer
        self.target = innermost_optimizer(optimizer)
        self.model = model
        self.reduction = reduction
        self.keep_gradients = keep_gradients
        self.variables = None
        self.layout = None
        self.window = None
        self.assignment = None
        self.last_gradients = []
        self._row_of_variable = {}
        self._warned_unknown = False
        self._patched = []
        self.installed = False

    @property
    def ready(self):
        """Whether the layout and the recorder's variables exist yet."""
        return self.window is not None

    # Installation ---------------------------------------------------------

    def install(self):
        if self.installed:
            return
        if installed_recorder(self.optimizer) is not None:
            raise ValueError("The optimizer already has a gradient-norm recorder; uninstall it first")
        if self.model.trainable_variables:
            self._create_state()
        # Otherwise the model is not built yet (TensorFlow builds it while
        # tracing the first train step): the state is created on the first
        # apply() call, inside that trace, as the optimizer creates its own.
        self._patch(self.target, "apply", self._make_hooked_apply(self.target.apply))
        # `.keras` files written while the hook is installed (ModelCheckpoint)
        # must not contain the recorder's variables, and checkpoints loaded
        # meanwhile (BackupAndRestore) do not contain them either.
        for optimizer in _optimizer_chain(self.optimizer):
            self._patch(
                optimizer, "save_own_variables", self._hiding_own_variables(optimizer.save_own_variables)
            )
            self._patch(
                optimizer, "load_own_variables", self._hiding_own_variables(optimizer.load_own_variables)
            )
        self.target.__dict__[_RECORDER_ATTRIBUTE] = self
        self.installed = True

    def _create_state(self):
        with backend.state_creation_scope(self.model):
            self._create_variables()

    def _create_variables(self):
        self.variables = list(self.model.trainable_variables)
        self.layout = GradientLayout.from_model(self.model)
        self._row_of_variable = {id(variable): row for row, variable in enumerate(self.variables)}
        self.window = self.target.add_variable(
            shape=(self.layout.num_groups + 2,),
            initializer="zeros",
            dtype="float32",
            name="gradient_norm_window",
            aggregation=_SAME_ON_EVERY_REPLICA,
        )
        # The variable -> group matrix lives on the device with the other
        # state: a constant converted in every step would be a host-to-device
        # copy per step under PyTorch (and a sync point on a GPU).
        matrix = self.layout.assignment()
        self.assignment = self.target.add_variable(
            shape=matrix.shape,
            initializer=lambda shape, dtype=None: ops.convert_to_tensor(matrix, dtype=dtype),
            dtype="float32",
            name="gradient_norm_groups",
            aggregation=_SAME_ON_EVERY_REPLICA,
        )
        if self.keep_gradients:
            self.last_gradients = [
                self.target.add_variable(
                    shape=variable.shape,
                    initializer="zeros",
                    dtype="float32",
                    name=variable.path.replace("/", "_") + "_last_gradient",
                    aggregation=_SAME_ON_EVERY_REPLICA,
                )
                for variable in self.variables
            ]

    def uninstall(self):
        """Restores the optimizer exactly: methods and variable list."""
        if not self.installed:
            return
        for obj, name, previous in reversed(self._patched):
            if previous is None:
                del obj.__dict__[name]
            else:
                obj.__dict__[name] = previous
        self._patched = []
        for variable in self._own_variables():
            keras_internals.untrack_optimizer_variable(self.target, variable)
        if self.target.__dict__.get(_RECORDER_ATTRIBUTE) is self:
            del self.target.__dict__[_RECORDER_ATTRIBUTE]
        self.window = None
        self.assignment = None
        self.last_gradients = []
        self.installed = False

    def _patch(self, obj, name, replacement):
        # Remember an instance attribute that was there before (another tool's
        # patch) so that uninstalling puts it back instead of deleting it.
        self._patched.append((obj, name, obj.__dict__.get(name)))
        # Set through __dict__: Keras' __setattr__ tracking has nothing to do
        # with bound methods.
        obj.__dict__[name] = replacement

    def _own_variables(self):
        own = [self.window, self.assignment] if self.window is not None else []
        return own + list(self.last_gradients)

    def _hiding_own_variables(self, method):
        def hidden(store):
            with keras_internals.optimizer_variables_hidden(self.target, self._own_variables()):
                return method(store)

        return hidden

    # Recording (runs inside the train step) --------------------------------

    def _make_hooked_apply(self, original_apply):
        def apply(grads, trainable_variables=None):
            grads = list(grads)
            if trainable_variables is not None:
                trainable_variables = list(trainable_variables)
                variables = trainable_variables
            else:
                variables = keras_internals.optimizer_built_variables(self.target)
            if not self.ready and self.model.trainable_variables:
                self._create_state()
            if self.ready and grads and len(grads) == len(variables):
                self._record(grads, variables)
            return original_apply(grads, trainable_variables)

        return apply

    def _record(self, grads, variables):
        target = self.target
        scale = target.loss_scale_factor
        accumulation_steps = target.gradient_accumulation_steps
        rows, applied = [], []
        for gradient, variable in zip(grads, variables):
            if gradient is None or getattr(variable, "overwrite_with_gradient", False):
                # Not a gradient descent update (e.g. float8 scaling factors).
                continue
            row = self._row_of_variable.get(id(variable))
            if row is None:
                self._warn_unknown(variable)
                continue
            gradient = ops.cast(ops.convert_to_tensor(gradient), "float32")
            if scale is not None:
                gradient = gradient / scale
            if accumulation_steps:
                accumulator = keras_internals.accumulated_gradient(target, variable)
                gradient = (gradient + ops.cast(accumulator, "float32")) / accumulation_steps
            rows.append(row)
            applied.append(gradient)
        if not rows:
            return
        # Under a TensorFlow strategy with several replicas, one replica's
        # gradients are its share; the optimizer applies their sum, which it
        # forms only later (in `_backend_update_step`, after clipping).
        applied = backend.applied_gradients(applied)

        is_update_step = None
        if accumulation_steps:
            apply_count = keras_internals.optimizer_apply_count(target)
            is_update_step = ops.equal((apply_count + 1) % accumulation_steps, 0)

        squared_norms = ops.stack([squared_norm(gradient) for gradient in applied])
        assignment = ops.convert_to_tensor(self.assignment)
        if rows != list(range(len(self.variables))):
            # A train step that applies a subset or another order of the
            # variables (rare): pick the matching rows.
            assignment = ops.take(assignment, rows, axis=0)
        group_norms = ops.sqrt(ops.matmul(ops.expand_dims(squared_norms, 0), assignment)[0])

        num_groups = self.layout.num_groups
        previous = ops.convert_to_tensor(self.window)
        accumulated, steps, reset = previous[:num_groups], previous[num_groups], previous[num_groups + 1]
        keep = 1.0 - reset
        if self.reduction == "mean":
            accumulated = accumulated * keep + group_norms
        elif self.reduction == "max":
            accumulated = ops.maximum(accumulated * keep, group_norms)
        else:
            accumulated = group_norms
        steps = steps * keep + 1.0
        updated = ops.concatenate([accumulated, ops.stack([steps, ops.zeros_like(steps)])])
        if is_update_step is not None:
            updated = ops.where(is_update_step, updated, previous)
        self.window.assign(updated)

        if self.keep_gradients:
            for row, gradient in zip(rows, applied):
                copy = self.last_gradients[row]
                if is_update_step is not None:
                    gradient = ops.where(is_update_step, gradient, copy)
                copy.assign(gradient)

    def _warn_unknown(self, variable):
        if not self._warned_unknown:
            self._warned_unknown = True
            name = getattr(variable, "path", None) or getattr(variable, "name", repr(variable))
            warnings.warn(
                f"GradientNormLogger: the optimizer applies a gradient to {name!r}, "
                "which is not a trainable variable of the model it was set up with; "
                "such gradients are left out of the logged norms.",
                stacklevel=3,
            )

    # Reading (runs in the callback, between steps) -------------------------

    def read(self):
        """Returns `(group_values, steps)` for the steps since the last read
        and starts a new window; `None` when no step was recorded since.

        `group_values` holds one value per group of the layout (layers,
        stages, global): the mean, max or last per-step norm.
        """
        if not self.ready:
            return None
        vector = np.array(self.window.numpy(), dtype="float64")
        num_groups = self.layout.num_groups
        steps, reset = vector[num_groups], vector[num_groups + 1]
        if steps == 0 or reset == 1:
            return None
        values = vector[:num_groups]
        if self.reduction == "mean":
            values = values / steps
        vector[num_groups + 1] = 1.0
        self.window.assign(vector.astype("float32"))
        return values, int(steps)

    def read_last_gradients(self):
        """The last applied gradient of every variable, as NumPy arrays."""
        return [np.asarray(copy.numpy()) for copy in self.last_gradients]


def squared_norm(tensor):
    # One dot product of the flattened tensor with itself: one kernel where
    # square + sum are two (eager PyTorch launches every op on its own), and
    # the reshape is a free view.
    flat = ops.reshape(tensor, (-1,))
    return ops.vdot(flat, flat)
