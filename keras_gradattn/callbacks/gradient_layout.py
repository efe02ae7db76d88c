"""Which layer and which stage each trainable variable belongs to.

Keras 3 builds `variable.path` from the names of the nested layers that own the
variable: `stage2/block1/conv1/kernel` belongs to layer `stage2/block1/conv1`
of stage `stage2`. Gradient norms are aggregated over these groups.
"""

import numpy as np

from keras_gradattn.utils.training_wrappers import trained_classifier


class GradientLayout:
    """Groups of trainable variables: layers (in model order), stages, global.

    The groups are the columns of `assignment`, a (num_variables, num_groups)
    0/1 matrix: layers first, then stages, then one global column. Squared
    per-variable norms times this matrix give squared per-group norms.
    """

    def __init__(self, variable_paths, model_name=None):
        if not variable_paths:
            raise ValueError("GradientLayout needs at least one variable path; received none")
        self.variable_paths = list(variable_paths)
        relative_paths = [_strip_model_prefix(path, model_name) for path in self.variable_paths]
        self.variable_layers = [_layer_of(path, model_name) for path in relative_paths]
        self.variable_stages = [layer.split("/", 1)[0] for layer in self.variable_layers]
        # dict.fromkeys keeps first-seen order: layers and stages in model order.
        self.layers = list(dict.fromkeys(self.variable_layers))
        self.stages = list(dict.fromkeys(self.variable_stages))
        self.num_groups = len(self.layers) + len(self.stages) + 1
        layer_index = {layer: i for i, layer in enumerate(self.layers)}
        stage_index = {stage: len(self.layers) + i for i, stage in enumerate(self.stages)}
        self.variable_columns = [
            (layer_index[layer], stage_index[stage])
            for layer, stage in zip(self.variable_layers, self.variable_stages)
        ]

    @classmethod
    def from_model(cls, model):
        # A training wrapper's variables are its classifier's: named after it.
        model = trained_classifier(model)
        variables = model.trainable_variables
        return cls([variable.path for variable in variables], model_name=model.name)

    def assignment(self, variable_indices=None):
        """The 0/1 matrix for the variables at `variable_indices` (all by default)."""
        if variable_indices is None:
            variable_indices = range(len(self.variable_paths))
        variable_indices = list(variable_indices)
        matrix = np.zeros((len(variable_indices), self.num_groups), dtype="float32")
        for row, index in enumerate(variable_indices):
            layer_column, stage_column = self.variable_columns[index]
            matrix[row, layer_column] = 1.0
            matrix[row, stage_column] = 1.0
            matrix[row, -1] = 1.0
        return matrix

    def split(self, group_values):
        """Splits a vector over groups into ({layer: v}, {stage: v}, global_v)."""
        group_values = np.asarray(group_values)
        num_layers = len(self.layers)
        per_layer = dict(zip(self.layers, group_values[:num_layers].tolist()))
        per_stage = dict(zip(self.stages, group_values[num_layers:-1].tolist()))
        return per_layer, per_stage, float(group_values[-1])

    def to_dict(self):
        return {
            "layers": self.layers,
            "stages": self.stages,
            "variables": [
                {"path": path, "layer": layer, "stage": stage}
                for path, layer, stage in zip(
                    self.variable_paths, self.variable_layers, self.variable_stages
                )
            ],
        }


def _strip_model_prefix(path, model_name):
    # Subclassed models build their layers inside their own name scope, so
    # every path starts with the model's name; functional models do not.
    if model_name and path.startswith(model_name + "/"):
        return path[len(model_name) + 1 :]
    return path


def _layer_of(relative_path, model_name):
    layer, separator, _ = relative_path.rpartition("/")
    if separator:
        return layer
    # A variable created by the model itself (e.g. a positional embedding).
    return model_name or "model"
