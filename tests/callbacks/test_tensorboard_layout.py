"""The Custom Scalars layout GradientNormLogger writes, read back with TensorBoard."""

import keras
import pytest
from gradflow_testing import DepthAttentionModel
from gradflow_testing import build_functional_model
from gradflow_testing import loss_object
from gradflow_testing import make_data
from tensorboard_testing import custom_scalars_layouts
from tensorboard_testing import load_with_tensorboard
from tensorboard_testing import tags_per_chart

from keras_gradattn.callbacks import GradientNormLogger
from keras_gradattn.callbacks.tensorboard_layout import ALL_DEPTH_ATTENTION_CHART
from keras_gradattn.callbacks.tensorboard_layout import GLOBAL_CHART
from keras_gradattn.callbacks.tensorboard_layout import LAYOUT_CATEGORY
from keras_gradattn.callbacks.tensorboard_layout import STAGE_CHART
from keras_gradattn.callbacks.tensorboard_layout import gradient_flow_layout


@pytest.mark.parametrize("writer", ["python", "tensorflow"])
def test_layout_charts_the_logged_tags(tmp_path, writer):
    if writer == "tensorflow":
        pytest.importorskip("tensorflow")
    keras.utils.set_random_seed(2)
    model = DepthAttentionModel(name="depth")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss_object())
    x, y = make_data(32)
    logger = GradientNormLogger(tmp_path, update_freq=2, attention_batch=x[:8], writer=writer)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[logger])

    loaded = load_with_tensorboard(tmp_path)
    # Written once per event file.
    (layout,) = custom_scalars_layouts(loaded)
    assert [category.title for category in layout.category] == [LAYOUT_CATEGORY]
    tags = set(loaded["scalars"])
    charts = tags_per_chart(layout, tags)
    stages = {tag for tag in tags if tag.startswith("grad_norm_stage/")}
    assert stages == {"grad_norm_stage/tokens", "grad_norm_stage/head"}
    assert charts == {
        STAGE_CHART: stages,
        GLOBAL_CHART: {"grad_norm_global", "learning_rate"},
        "depth attention received, encoder layer 1": {f"depth_attention/layer1/token{t}" for t in range(1, 5)},
        "depth attention received, encoder layer 2": {f"depth_attention/layer2/token{t}" for t in range(1, 5)},
    }


def test_model_without_depth_attention_gets_no_attention_charts(tmp_path):
    model = build_functional_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss_object())
    x, y = make_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[GradientNormLogger(tmp_path, update_freq=1)])

    loaded = load_with_tensorboard(tmp_path)
    (layout,) = custom_scalars_layouts(loaded)
    charts = tags_per_chart(layout, set(loaded["scalars"]))
    assert charts == {
        STAGE_CHART: {"grad_norm_stage/stage1", "grad_norm_stage/stage2", "grad_norm_stage/head"},
        GLOBAL_CHART: {"grad_norm_global", "learning_rate"},
    }


def test_attention_chart_of_layer_1_does_not_take_layer_10():
    tags = {"depth_attention/layer1/stem", "depth_attention/layer10/stem", "depth_attention/layer1/x/y"}
    charts = tags_per_chart(gradient_flow_layout(encoder_layers=10), tags)
    assert charts["depth attention received, encoder layer 1"] == {"depth_attention/layer1/stem"}
    assert charts["depth attention received, encoder layer 10"] == {"depth_attention/layer10/stem"}
    # A model that does not say how many layers it has: one chart for all.
    charts = tags_per_chart(gradient_flow_layout(encoder_layers=None), tags)
    assert charts[ALL_DEPTH_ATTENTION_CHART] == tags
