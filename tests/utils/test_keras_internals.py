"""keras_gradattn.utils.keras_internals: what its functions do, and that no
other module of the package uses a private Keras name."""

import ast
import pathlib

import keras
import numpy as np
import pytest

from keras_gradattn.utils import keras_internals
from testing_utils import REPOSITORY
from testing_utils import to_numpy

PACKAGE_DIRECTORY = pathlib.Path(REPOSITORY) / "keras_gradattn"
INTERNALS_MODULE = PACKAGE_DIRECTORY / "utils" / "keras_internals.py"

# Private Keras names that exist only in some states or on some backends,
# so that they may be missing from the instances inspected below.
KNOWN_PRIVATE_KERAS_NAMES = {
    "_accumulated_gradients",
    "_backend",
    "_backend_apply_gradients",
    "_flatten_layers",
    "_get_seed_generator",
    "_get_variable_index",
    "_iterations",
    "_layers",
    "_model",
    "_parallel_update_step",
    "_track_variable",
    "_tracker",
    "_trainable_variables",
    "_untrack_variable",
    "_variables",
}


class _BlockWithBatchNorm(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)
        self.norm = keras.layers.BatchNormalization()

    def call(self, inputs, training=None):
        return self.norm(self.dense(inputs), training=training)


class _IdentityDataLayer(keras_internals.DataLayer):
    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        # What DataLayer's seed generators are made from.
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        return inputs


def _private_keras_names():
    """The private attribute names of the Keras objects the package uses."""
    inputs = keras.Input((2,))
    functional = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    data_layer = _IdentityDataLayer()
    instances = [
        keras.layers.Layer(),
        keras.Sequential([keras.layers.Dense(1)]),
        functional,
        keras.optimizers.Adam(),
        keras.optimizers.SGD(gradient_accumulation_steps=2),
        keras.callbacks.Callback(),
        keras.Variable(1.0),
        keras.random.SeedGenerator(1),
        data_layer,
    ]
    names = set(KNOWN_PRIVATE_KERAS_NAMES)
    for instance in instances:
        names.update(dir(instance))
    # A DynamicBackend forwards unknown attributes; its own are on its class.
    names.update(dir(type(data_layer.backend)))
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def private_keras_uses(source, private_names):
    """`(line, what)` for each use of a private Keras name in `source`: a
    `keras.src` import or string, an attribute or a string naming one of
    `private_names`, or a method overriding one."""
    uses = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            uses += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("keras.src")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src"):
            uses.append((node.lineno, node.module))
        elif isinstance(node, ast.Attribute) and node.attr in private_names:
            uses.append((node.lineno, "." + node.attr))
        elif isinstance(node, ast.ClassDef):
            uses += [
                (method.lineno, f"def {method.name}")
                for method in node.body
                if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) and method.name in private_names
            ]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # getattr(optimizer, "_iterations"), importlib.import_module("keras.src...")
            if node.value in private_names or node.value.startswith("keras.src"):
                uses.append((node.lineno, repr(node.value)))
    return uses


def test_no_module_but_keras_internals_uses_private_keras_names():
    private_names = _private_keras_names()
    offenders = []
    for path in sorted(PACKAGE_DIRECTORY.rglob("*.py")):
        if path == INTERNALS_MODULE:
            continue
        for line, what in private_keras_uses(path.read_text(), private_names):
            offenders.append(f"{path.relative_to(REPOSITORY)}:{line}: {what}")
    assert not offenders, (
        "Private Keras names outside keras_gradattn/utils/keras_internals.py "
        "(add a function there instead):\n" + "\n".join(offenders)
    )


def test_the_scan_finds_private_keras_uses():
    # The test above is only as good as this scan.
    source = (
        "from keras.src.layers import Layer\n"
        "import keras.src.ops\n"
        "count = optimizer._iterations\n"
        "class Adam(keras.optimizers.Adam):\n"
        "    def _parallel_update_step(self, grads, variables, learning_rate): pass\n"
        "tracked = getattr(optimizer, '_variables')\n"
        "own = self._own_window\n"
        "# model._flatten_layers() in a comment is not a use\n"
        "def _parallel_update_step(): pass  # a module function is not an override\n"
    )
    uses = private_keras_uses(source, _private_keras_names())
    assert sorted(line for line, _ in uses) == [1, 2, 3, 5, 6]


def test_keras_internals_imports_nothing_from_the_package():
    tree = ast.parse(INTERNALS_MODULE.read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.startswith("keras_gradattn")]


# Layers -----------------------------------------------------------------------


def test_flatten_layers_reaches_nested_batch_norm():
    inputs = keras.Input((4,))
    block = _BlockWithBatchNorm()
    model = keras.Model(inputs, keras.layers.Dense(2)(block(inputs)))
    layers = keras_internals.flatten_layers(model)
    # The public list stops at the top level.
    assert block.norm not in model.layers
    assert block.norm in layers
    assert block.dense in layers
    assert block in layers
    assert model not in layers
    assert len({id(layer) for layer in layers}) == len(layers)


def test_data_layer_seed_generator_is_one_generator_per_layer_and_backend():
    layer = _IdentityDataLayer()
    generator = keras_internals.data_layer_seed_generator(layer)
    assert isinstance(generator, keras.random.SeedGenerator)
    assert keras_internals.data_layer_seed_generator(layer) is generator
    assert keras_internals.data_layer_seed_generator(_IdentityDataLayer()) is not generator


def test_callback_model_as_set():
    callback = keras.callbacks.Callback()
    assert keras_internals.callback_model_as_set(callback) is None
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    callback.set_model(model)
    assert keras_internals.callback_model_as_set(callback) is model


# Optimizers -------------------------------------------------------------------


def _variable_pair():
    return [keras.Variable(np.ones((2,), "float32"), name="a"), keras.Variable(np.ones((3,), "float32"), name="b")]


def test_optimizer_apply_count_counts_micro_batches():
    variables = _variable_pair()
    optimizer = keras.optimizers.SGD(gradient_accumulation_steps=2)
    gradients = [keras.ops.ones(variable.shape) for variable in variables]
    for _ in range(3):
        optimizer.apply(gradients, variables)
    assert int(to_numpy(keras_internals.optimizer_apply_count(optimizer))) == 3
    # The public counter counts applied updates.
    assert int(to_numpy(optimizer.iterations)) == 1


def test_optimizer_built_variables_and_accumulated_gradient():
    variables = _variable_pair()
    optimizer = keras.optimizers.SGD(gradient_accumulation_steps=2)
    optimizer.build(variables)
    assert keras_internals.optimizer_built_variables(optimizer) == variables
    gradients = [keras.ops.full(variable.shape, 0.5) for variable in variables]
    optimizer.apply(gradients)
    for variable in variables:
        accumulator = keras_internals.accumulated_gradient(optimizer, variable)
        np.testing.assert_allclose(to_numpy(accumulator), np.full(variable.shape, 0.5))


def test_untrack_optimizer_variable():
    optimizer = keras.optimizers.Adam()
    optimizer.build(_variable_pair())
    extra = optimizer.add_variable(shape=(2,), name="extra")
    assert any(variable is extra for variable in optimizer.variables)
    before = len(optimizer.variables)
    keras_internals.untrack_optimizer_variable(optimizer, extra)
    assert not any(variable is extra for variable in optimizer.variables)
    assert len(optimizer.variables) == before - 1


def test_optimizer_variables_hidden_restores_positions_even_after_an_error():
    optimizer = keras.optimizers.Adam()
    optimizer.build(_variable_pair())
    first = optimizer.add_variable(shape=(1,), name="first")
    optimizer.add_variable(shape=(1,), name="between")
    last = optimizer.add_variable(shape=(1,), name="last")
    original = optimizer.variables
    with pytest.raises(RuntimeError):
        with keras_internals.optimizer_variables_hidden(optimizer, [first, last]):
            inside = optimizer.variables
            raise RuntimeError("save failed")
    assert [id(v) for v in inside] == [id(v) for v in original if v is not first and v is not last]
    assert [id(v) for v in optimizer.variables] == [id(v) for v in original]


def test_transform_gradients_in_parallel_update_on_every_backend():
    class DoubledGradientSGD(type(keras.optimizers.SGD())):
        def _doubled(self, gradient, variable):
            return gradient * 2.0

        def update_step(self, gradient, variable, learning_rate):
            super().update_step(self._doubled(gradient, variable), variable, learning_rate)

    keras_internals.transform_gradients_in_parallel_update(DoubledGradientSGD, DoubledGradientSGD._doubled)
    variables = _variable_pair()
    optimizer = DoubledGradientSGD(learning_rate=1.0)
    optimizer.apply([keras.ops.ones(variable.shape) for variable in variables], variables)
    # 1 - 1.0 * (2 * 1): the gradients were doubled once, whichever path ran.
    for variable in variables:
        np.testing.assert_allclose(to_numpy(variable), -np.ones(variable.shape))
