"""Post-hoc gradient-flow probe: gradients of the loss w.r.t. layer OUTPUTS.

The paper (section 7 of the reference) registers backward hooks on every
Conv, Dense and encoder layer and records the gradient of the loss with
respect to each layer's output over 20 batches after training. Its probe ran
in training mode on test batches, which changed the BatchNorm statistics, and
some hooks never fired, which silently capped the "health score" (defect 5).

This probe measures the same quantity without either defect:
- The forward pass is `model.stateless_call(trainable, non_trainable, x,
  training=...)` and the returned state is discarded: weights, BatchNorm
  moving statistics and dropout seeds are bit-identical afterwards, whether
  `training` is True or False.
- Each targeted layer's `call` is wrapped for the duration of the probe so
  that its output becomes `output + probe_i`, where `probe_i` is a zero tensor
  passed as an argument of the differentiated function; d loss / d probe_i is
  exactly d loss / d output. The wrappers are removed afterwards, also on
  error.
- Every targeted layer is accounted for: a layer that is never called, or
  whose output has no path to the loss, raises an error naming it (unless
  `allow_missing=True`, which lists it in `missing_layers`).
"""

import dataclasses
import json
import re

import keras
import numpy as np
from keras import ops

from keras_gradattn.analysis.gradient_statistics import EXPLODING_THRESHOLD
from keras_gradattn.analysis.gradient_statistics import VANISHING_THRESHOLD
from keras_gradattn.analysis.gradient_statistics import gradient_flow_statistics
from keras_gradattn.backend import value_and_grad
from keras_gradattn.utils import atomic_write_json
from keras_gradattn.utils import keras_internals

PROBE_FILE_NAME = "gradient_probe.json"
PROBE_FORMAT = "keras_gradattn.gradient_probe/1"
STATISTIC_NAMES = ("l2_norm", "mean_abs", "std", "max_abs")

_CONV_TYPES = tuple(
    getattr(keras.layers, name)
    for name in (
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "SeparableConv1D",
        "SeparableConv2D",
    )
    if hasattr(keras.layers, name)
)
_DENSE_TYPES = (keras.layers.Dense, keras.layers.EinsumDense)
# One transformer encoder layer (not a stack of them): keras-hub's
# TransformerEncoder, and the EncoderLayer / EncoderBlock naming habit.
_ENCODER_CLASS_NAME = re.compile(r"(TransformerEncoder|EncoderLayer|EncoderBlock)$")


def layer_kind(layer):
    """'conv', 'dense', 'encoder', or None for layers the paper does not probe."""
    if isinstance(layer, _CONV_TYPES):
        return "conv"
    if isinstance(layer, _DENSE_TYPES):
        return "dense"
    if _ENCODER_CLASS_NAME.search(type(layer).__name__):
        return "encoder"
    return None


def default_probe_targets(model):
    """Every Conv, Dense (incl. EinsumDense) and encoder layer, nested ones too."""
    return [layer for layer in _all_layers(model) if layer_kind(layer) is not None]


def _all_layers(model):
    seen, layers = set(), []
    for layer in keras_internals.flatten_layers(model):
        if id(layer) not in seen:
            seen.add(id(layer))
            layers.append(layer)
    return layers


def _layer_name(layer):
    return layer.path or layer.name


@dataclasses.dataclass
class GradientFlowReport:
    """What the probe measured: per batch and per layer output.

    `layers` lists the probed layer outputs in forward (call) order, each a
    dict with `name` (the layer path, with `#k` for its k-th extra call),
    `class_name`, `kind` and `output_shape`. `per_batch[statistic]` is a
    (num_batches, num_layers) array for each statistic of `STATISTIC_NAMES`
    (L2 norm, mean |g|, std of g, max |g|). `statistics` holds the section-7
    figures computed on the per-layer mean L2 norm.
    """

    model_name: str
    backend: str
    training: bool
    loss: str
    layers: list
    per_batch: dict
    losses: list
    missing_layers: list
    statistics: dict

    @property
    def layer_names(self):
        return [layer["name"] for layer in self.layers]

    @property
    def mean_norms(self):
        """Per-layer L2 norm averaged over batches."""
        return self.per_batch["l2_norm"].mean(axis=0)

    def to_dict(self):
        return {
            "format": PROBE_FORMAT,
            "model_name": self.model_name,
            "backend": self.backend,
            "training": self.training,
            "loss": self.loss,
            "layers": self.layers,
            "per_batch": {name: values.tolist() for name, values in self.per_batch.items()},
            "losses": self.losses,
            "missing_layers": self.missing_layers,
            "statistics": self.statistics,
        }

    @classmethod
    def from_dict(cls, data):
        if data.get("format") != PROBE_FORMAT:
            raise ValueError(
                f"not a gradient probe file: format must be {PROBE_FORMAT!r}; received {data.get('format')!r}"
            )
        fields = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in fields}
        values["per_batch"] = {
            name: np.asarray(value, dtype="float64").reshape(len(data["losses"]), len(data["layers"]))
            for name, value in data["per_batch"].items()
        }
        return cls(**values)

    def save(self, path):
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        with open(path) as file:
            return cls.from_dict(json.load(file))


class GradientFlowProbe:
    """Measures gradients of the loss w.r.t. the outputs of chosen layers.

    Args:
        model: a built Keras model.
        loss: a Keras loss (object, name or callable `loss(y_true, y_pred)`);
            defaults to the model's compiled loss.
        training: run layers in training mode (BatchNorm batch statistics,
            active dropout). Either way no model state changes.
        layers: which layers to probe: None for `default_probe_targets`, a
            predicate `layer -> bool`, or a list of layers or layer names/paths.
        allow_missing: report targeted layers that receive no gradient in
            `missing_layers` instead of raising.
    """

    def __init__(self, model, loss=None, training=False, layers=None, allow_missing=False):
        if not model.built:
            raise ValueError(
                f"GradientFlowProbe needs a built model; received unbuilt model {model.name!r} (call it on a batch first)"
            )
        loss = loss if loss is not None else getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                f"GradientFlowProbe needs a loss; received loss=None and model {model.name!r} has no compiled loss"
            )
        self.model = model
        self.loss_fn = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "name", type(loss).__name__)
        self.training = bool(training)
        self.allow_missing = allow_missing
        self.targets = self._select_targets(layers)
        if not self.targets:
            raise ValueError(f"GradientFlowProbe found no layers to probe in model {model.name!r}; received layers={layers!r}")
        self._shape_cache = {}

    def _select_targets(self, selection):
        all_layers = _all_layers(self.model)
        if selection is None:
            return [layer for layer in all_layers if layer_kind(layer) is not None]
        if callable(selection):
            return [layer for layer in all_layers if selection(layer)]
        by_name = {}
        for layer in all_layers:
            by_name.setdefault(layer.name, layer)
            by_name.setdefault(_layer_name(layer), layer)
        targets = []
        for item in selection:
            if isinstance(item, str):
                if item not in by_name:
                    raise ValueError(f"GradientFlowProbe: no layer named {item!r} in model {self.model.name!r}")
                item = by_name[item]
            targets.append(item)
        return targets

    # Probe ------------------------------------------------------------------

    def run(self, batches, max_batches=None):
        """Probes `batches` (an iterable of `(x, y)` or `(x, y, sample_weight)`)."""
        if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches <= 0):
            raise ValueError(f"max_batches must be a positive integer or None; received {max_batches!r}")
        trainable = [ops.convert_to_tensor(variable) for variable in self.model.trainable_variables]
        non_trainable = [ops.convert_to_tensor(variable) for variable in self.model.non_trainable_variables]
        taps = _OutputTaps(self.targets)
        per_batch = {name: [] for name in STATISTIC_NAMES}
        losses, call_keys, first_specs = [], None, None
        with taps:
            for index, batch in enumerate(batches):
                if max_batches is not None and index >= max_batches:
                    break
                x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
                x, y, sample_weight = (_to_tensors(part) for part in (x, y, sample_weight))

                def forward(x=x):
                    y_pred, _ = self.model.stateless_call(trainable, non_trainable, x, training=self.training)
                    return y_pred  # the new non-trainable state is discarded

                specs = self._output_specs(taps, forward, x)

                def loss_of_probes(*probes, x=x, y=y, sample_weight=sample_weight):
                    taps.start_gradients(specs, probes)
                    y_pred = forward(x)
                    loss = self.loss_fn(y, y_pred, sample_weight) if sample_weight is not None else self.loss_fn(y, y_pred)
                    return ops.mean(ops.cast(loss, "float32"))

                probes = [ops.zeros(shape, dtype=dtype) for _, shape, dtype in _flat_specs(specs)]
                loss, grads = value_and_grad(loss_of_probes, probes)
                taps.stop()
                losses.append(float(ops.convert_to_numpy(loss)))
                keys, batch_stats = _statistics_per_call(specs, grads)
                if call_keys is None:
                    call_keys, first_specs = keys, specs
                elif keys != call_keys:
                    raise ValueError(
                        "GradientFlowProbe: the probed layers were called differently on two batches; received "
                        f"{len(keys)} calls after {len(call_keys)}"
                    )
                for name in STATISTIC_NAMES:
                    per_batch[name].append(batch_stats[name])
        if not losses:
            raise ValueError("GradientFlowProbe needs at least one batch; received an empty iterable")
        return self._report(call_keys, per_batch, losses, first_specs)

    def _output_specs(self, taps, forward, x):
        # Output shapes depend on the input shapes only: one recording forward
        # pass per distinct input shape.
        key = tuple(tuple(leaf.shape) for leaf in keras.tree.flatten(x))
        if key not in self._shape_cache:
            taps.start_recording()
            forward(x)
            self._shape_cache[key] = taps.stop()
        return self._shape_cache[key]

    def _report(self, call_keys, per_batch, losses, specs):
        arrays = {name: np.asarray(values, dtype="float64") for name, values in per_batch.items()}
        received = ~np.isnan(arrays["l2_norm"]).any(axis=0)
        spec_by_key = {(layer_index, call): leaf_specs for layer_index, call, leaf_specs in specs}
        layers, missing = [], []
        for column, (layer_index, call) in enumerate(call_keys):
            layer = self.targets[layer_index]
            name = _layer_name(layer) + (f"#{call}" if call else "")
            if not received[column]:
                missing.append(name)
                continue
            shapes = [list(shape) for shape, _ in spec_by_key[(layer_index, call)]]
            layers.append(
                {
                    "name": name,
                    "class_name": type(layer).__name__,
                    "kind": layer_kind(layer),
                    "output_shape": shapes[0] if len(shapes) == 1 else shapes,
                }
            )
        called = {layer_index for layer_index, _ in call_keys}
        missing += [_layer_name(layer) for i, layer in enumerate(self.targets) if i not in called]
        if missing and not self.allow_missing:
            raise ValueError(
                f"GradientFlowProbe: no gradient reached the output of {len(missing)} targeted layer(s) "
                f"{missing} (never called, or not on the loss path); pass allow_missing=True to list them instead"
            )
        if not layers:
            raise ValueError(f"GradientFlowProbe: no targeted layer received a gradient; received missing layers {missing}")
        arrays = {name: values[:, received] for name, values in arrays.items()}
        names = [layer["name"] for layer in layers]
        return GradientFlowReport(
            model_name=self.model.name,
            backend=keras.backend.backend(),
            training=self.training,
            loss=str(self.loss_name),
            layers=layers,
            per_batch=arrays,
            losses=losses,
            missing_layers=missing,
            statistics=gradient_flow_statistics(names, arrays["l2_norm"].mean(axis=0)),
        )


def probe_gradient_flow(
    model, batches, loss=None, training=False, layers=None, allow_missing=False, max_batches=None, output_path=None
):
    """Runs a `GradientFlowProbe` over `batches`; writes JSON to `output_path`
    (e.g. `RUN_DIR/gradient_probe.json`) when given. Returns the report."""
    probe = GradientFlowProbe(model, loss=loss, training=training, layers=layers, allow_missing=allow_missing)
    report = probe.run(batches, max_batches=max_batches)
    if output_path is not None:
        report.save(output_path)
    return report


# Output taps ------------------------------------------------------------------


class _OutputTaps:
    """Wraps the targeted layers' `call` while the probe runs (a context).

    Recording mode notes, per call of a targeted layer, the shapes and dtypes
    of its floating outputs; gradient mode adds the matching probe tensor to
    each of them.
    """

    def __init__(self, layers):
        self.layers = layers
        self._mode = None
        self._calls = None
        self._probes = None

    def __enter__(self):
        try:
            for index, layer in enumerate(self.layers):
                if "call" in vars(layer):
                    raise ValueError(f"GradientFlowProbe: layer {_layer_name(layer)!r} already has a wrapped call")
                layer.__dict__["call"] = self._wrap(index, layer.call)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        for layer in self.layers:
            layer.__dict__.pop("call", None)
        self._mode = None
        return False

    def start_recording(self):
        self._mode, self._calls = "record", []

    def start_gradients(self, specs, probes):
        probes = list(probes)
        self._probes = {}
        for layer_index, call, leaf_specs in specs:
            self._probes[(layer_index, call)] = probes[: len(leaf_specs)]
            probes = probes[len(leaf_specs) :]
        self._mode, self._calls = "gradients", []

    def stop(self):
        calls, self._mode, self._calls = self._calls, None, None
        return calls

    def _wrap(self, layer_index, original_call):
        def call(*args, **kwargs):
            outputs = original_call(*args, **kwargs)
            if self._mode is None:
                return outputs
            call_number = sum(1 for entry in self._calls if entry[0] == layer_index)
            leaves = keras.tree.flatten(outputs)
            floating = [i for i, leaf in enumerate(leaves) if _is_floating(leaf)]
            if self._mode == "record":
                leaf_specs = [(tuple(leaves[i].shape), keras.backend.standardize_dtype(leaves[i].dtype)) for i in floating]
                self._calls.append((layer_index, call_number, leaf_specs))
                return outputs
            self._calls.append((layer_index, call_number, None))
            probes = self._probes.get((layer_index, call_number))
            if probes is None:
                raise ValueError(
                    f"GradientFlowProbe: layer {_layer_name(self.layers[layer_index])!r} was called more often "
                    "than in the recording pass"
                )
            for i, probe in zip(floating, probes):
                leaves[i] = leaves[i] + probe
            return keras.tree.pack_sequence_as(outputs, leaves)

        return call


def _is_floating(value):
    dtype = getattr(value, "dtype", None)
    return dtype is not None and "float" in keras.backend.standardize_dtype(dtype)


def _flat_specs(specs):
    for layer_index, call, leaf_specs in specs:
        for shape, dtype in leaf_specs:
            yield (layer_index, call), shape, dtype


def _statistics_per_call(specs, grads):
    grads = list(grads)
    keys, stats = [], {name: [] for name in STATISTIC_NAMES}
    for layer_index, call, leaf_specs in specs:
        leaf_grads, grads = grads[: len(leaf_specs)], grads[len(leaf_specs) :]
        keys.append((layer_index, call))
        present = [g for g in leaf_grads if g is not None]
        if not present:
            for name in STATISTIC_NAMES:
                stats[name].append(np.nan)
            continue
        values = np.concatenate(
            [np.asarray(ops.convert_to_numpy(ops.cast(g, "float32")), dtype="float64").ravel() for g in present]
        )
        magnitudes = np.abs(values)
        stats["l2_norm"].append(float(np.sqrt(np.sum(np.square(values)))))
        stats["mean_abs"].append(float(magnitudes.mean()))
        stats["std"].append(float(values.std()))
        stats["max_abs"].append(float(magnitudes.max()))
    return keys, stats


def _to_tensors(value):
    if value is None:
        return None
    return keras.tree.map_structure(lambda leaf: ops.convert_to_tensor(np.asarray(leaf)), value)


__all__ = [
    "EXPLODING_THRESHOLD",
    "PROBE_FILE_NAME",
    "VANISHING_THRESHOLD",
    "GradientFlowProbe",
    "GradientFlowReport",
    "default_probe_targets",
    "layer_kind",
    "probe_gradient_flow",
]
