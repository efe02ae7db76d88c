"""Reusable Keras layers of GradAttn and its baselines."""

from keras_gradattn.layers.channel_attention import ConvolutionalBlockAttention
from keras_gradattn.layers.channel_attention import SqueezeExcitation
from keras_gradattn.layers.depth_token_encoder import POSITIONAL_ENCODINGS
from keras_gradattn.layers.depth_token_encoder import DepthTokenEncoder
from keras_gradattn.layers.fast_paths import FusedBatchNormalization
from keras_gradattn.layers.multi_head_self_attention import (
    MultiHeadSelfAttention,
)
from keras_gradattn.layers.positional_embedding import (
    LearnedPositionalEmbedding,
)
from keras_gradattn.layers.resnet_blocks import BasicBlock
from keras_gradattn.layers.resnet_blocks import ResNetStage
from keras_gradattn.layers.resnet_blocks import ResNetStem
from keras_gradattn.layers.rotary_embedding import RotaryEmbedding
from keras_gradattn.layers.skip_connections import AttentionResidual
from keras_gradattn.layers.skip_connections import DepthWeightedAverage
from keras_gradattn.layers.skip_connections import HyperConnection
from keras_gradattn.layers.tap_tokenizer import TapTokenizer
from keras_gradattn.layers.transformer_encoder_layer import (
    TransformerEncoderLayer,
)
