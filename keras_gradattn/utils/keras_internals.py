"""Every use of a private Keras name in the package, each behind one function.

Keras does not promise anything about names that start with an underscore or
live under `keras.src`: they may change in any release. The package needs a
few of them, for things the public API cannot do. Keeping them all here means
a new Keras release is checked (and, if need be, fixed) in this one file, and
the rest of the package reads as public-API code. A test
(tests/utils/test_keras_internals.py) fails when a private Keras name appears in
any other module of the package.

Each function says why the private name is needed and for which Keras
versions it was checked. "Checked" means the package's layer, model and
gradient-flow tests pass on that version with the JAX backend, and on 3.15
with all three backends. Where a public Keras API does the job it is used
instead, and the function is kept only so that callers need not know.

This module imports Keras only, never the rest of the package.
"""

import contextlib

# Keras' base class of its image preprocessing layers: inside a `tf.data`
# pipeline it runs the layer with TensorFlow ops whatever the Keras backend,
# elsewhere with the active backend. Keras does not export it. It was
# `TFDataLayer` in `tf_data_layer` up to Keras 3.11 and became `DataLayer` in
# `data_layer` in 3.12. Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
try:
    from keras.src.layers.preprocessing.data_layer import DataLayer  # noqa: F401 (keras_internals.DataLayer)
except ImportError:
    from keras.src.layers.preprocessing.tf_data_layer import TFDataLayer as DataLayer  # noqa: F401


def data_layer_seed_generator(layer):
    """The `SeedGenerator` a `DataLayer` draws from on its current backend.

    A `DataLayer` may run with TensorFlow ops inside `tf.data` and with the
    Keras backend elsewhere; it keeps one seed generator per backend, made
    on demand by the private `_get_seed_generator`, since a generator's state
    is a variable of one backend. Keras' own preprocessing layers use it the
    same way, and like them `layer` must set `seed` and `generator` (a
    `SeedGenerator`) in its `__init__`. The backend's name is the public `DynamicBackend.name` from
    Keras 3.11 on; Keras 3.10 has only the private `_backend`.
    Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
    """
    dynamic_backend = layer.backend
    # Looked up on the class: an instance forwards unknown attributes to the
    # backend module it stands for.
    if isinstance(getattr(type(dynamic_backend), "name", None), property):
        backend_name = dynamic_backend.name
    else:
        backend_name = dynamic_backend._backend
    return layer._get_seed_generator(backend_name)


def flatten_layers(layer):
    """Every layer nested in `layer` (itself excluded), at any depth, once.

    The public `Model.layers` lists only the top level, and a plain `Layer`
    has no public list of its sublayers at all; a `BatchNormalization`
    inside a residual block would be missed. Keras' private `_flatten_layers`
    walks the tracked sublayers of any layer or model.
    Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
    """
    return layer._flatten_layers(include_self=False, recursive=True)



def callback_model_as_set(callback):
    """The model given to `callback.set_model`, or None, left as it is.

    The public `Callback.model` does more than return it: under JAX it first
    writes the trainer's in-flight state back into the model's variables
    (`jax_state_sync`), under PyTorch it unwraps `DistributedDataParallel`.
    A callback that only needs the model object, for instance to drop its
    cached train function after a fit stopped with an exception, reads the
    private `_model` and leaves the variables alone.
    Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
    """
    return callback._model


# Optimizers ---------------------------------------------------------------


def optimizer_apply_count(optimizer):
    """The variable counting `optimizer.apply` calls (micro-batches included).

    The public `optimizer.iterations` is the same variable, except that with
    `gradient_accumulation_steps=k` it is a tensor counting applied updates
    (every k-th call) instead: the count of calls, which decides when an
    accumulated update is applied, is only the private `_iterations`.
    Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
    """
    return optimizer._iterations


def optimizer_built_variables(optimizer):
    """The variables `optimizer` was built for, in build order.

    `optimizer.apply(grads)` called without variables applies the gradients
    to these (the private `_trainable_variables`); no public attribute lists
    them (the public `optimizer.variables` is the optimizer's own state).
    Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
    """
    return list(optimizer._trainable_variables)


def accumulated_gradient(optimizer, variable):
    """The gradient sum accumulated for `variable` since the last update.

    Only set with `gradient_accumulation_steps`; Keras adds the current
    gradient to it and applies the mean on every k-th step. Both the
    accumulator list and the variable -> position map are private.
    Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
    """
    return optimizer._accumulated_gradients[optimizer._get_variable_index(variable)]


def untrack_optimizer_variable(optimizer, variable):
    """Removes `variable`, made with `optimizer.add_variable`, from the
    optimizer's variables (and so from what it saves).

    Keras has no public way to remove a variable once added; its private
    `_untrack_variable` unlocks the variable tracker to do so.
    Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
    """
    optimizer._untrack_variable(variable)


@contextlib.contextmanager
def optimizer_variables_hidden(optimizer, variables):
    """Leaves `variables` out of `optimizer.variables` within the block.

    For `save_own_variables` / `load_own_variables`, which store and read
    the optimizer's variables by position: extra variables added to an
    optimizer would shift the positions and change the file. The public
    `optimizer.variables` is a copy; the list the tracker fills is the
    private `_variables`, edited here in place and put back as it was.
    Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
    """
    tracked = optimizer._variables
    hidden_ids = {id(variable) for variable in variables}
    positions = [(i, v) for i, v in enumerate(tracked) if id(v) in hidden_ids]
    for _, variable in reversed(positions):
        del tracked[_position_by_id(tracked, variable)]
    try:
        yield
    finally:
        for position, variable in positions:
            tracked.insert(position, variable)


def _position_by_id(items, item):
    # Variables compare by value (`==` is an op), so find them by identity.
    for position, candidate in enumerate(items):
        if candidate is item:
            return position
    raise ValueError(f"{item!r} is not in the list")


def transform_gradients_in_parallel_update(optimizer_class, transform):
    """Makes `optimizer_class` pass every gradient through `transform` on
    backends that update all variables in one call.

    `transform(optimizer, gradient, value)` returns the gradient to apply,
    `value` being the variable's current value. On PyTorch, Keras' optimizers
    update all variables at once with `torch._foreach` kernels in the private
    `_parallel_update_step` and never call the public `update_step`; a
    subclass that changes gradients in `update_step` must also change them
    there. Other backends never call it, and the override is harmless there.
    Checked: 3.10.0, 3.11.3, 3.12.0, 3.13.0, 3.15.1.
    """

    def _parallel_update_step(self, grads, variables, learning_rate):
        grads = [transform(self, g, v.value) for g, v in zip(grads, variables)]
        super(optimizer_class, self)._parallel_update_step(grads, variables, learning_rate)

    optimizer_class._parallel_update_step = _parallel_update_step
    return optimizer_class


def fit_under_multi_worker_mirrored_strategy(model):
    """Lets `model.fit`, `evaluate` and `predict` run under TensorFlow's
    `MultiWorkerMirroredStrategy` with more than one worker, which Keras'
    TensorFlow trainer does not (keras-team/keras#20585). Two private places:

    - `TensorFlowTrainer._maybe_symbolic_build` reduces the first batch, an
      `(x, y)` tuple of per-replica values, with `strategy.reduce`, which the
      multi-worker strategy does not map over tuples (`ValueError: Attempt to
      convert a value (PerReplica...)`). `model` gets its own method that builds
      from the distributed dataset's `element_spec` instead; it reads no batch,
      so a reshuffled pipeline's first epoch is its first permutation, as
      without a strategy.
    - `reduce_per_replica(..., reduction="auto")` reduces each logged metric
      with `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars
      (`Invalid reduction dimension 0 for input with 0 dimensions`); the
      module's function is wrapped to average scalars over the replicas
      (`axis=None`) under that strategy, and to call Keras' own otherwise.

    Checked: 3.15.1 with TensorFlow 2.21.
    """
    import types

    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            data_batch = tf.nest.map_structure(_local_spec, iterator._distributed_dataset.element_spec)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(_maybe_symbolic_build, model)
    if getattr(tensorflow_trainer.reduce_per_replica, "_multi_worker_scalars", False):
        return model
    keras_reduce = tensorflow_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tensorflow_trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica._multi_worker_scalars = True
    tensorflow_trainer.reduce_per_replica = reduce_per_replica
    return model


def _local_spec(spec):
    """One replica's `tf.TypeSpec` of a (possibly per-replica) element spec."""
    return spec._value_specs[0] if hasattr(spec, "_value_specs") else spec
