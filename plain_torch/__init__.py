"""The paper's models in plain PyTorch, outside the package.

`torch.nn` modules written as a PyTorch user would write them (NCHW, eager,
`nn.TransformerEncoderLayer` where it fits), from the architecture that
docs/architecture.md describes, not from the package's Keras code. Two uses:

- a second, independent check of the Keras architecture: a Keras model's
  weights, copied in by `load_keras_weights`, give the same logits and the
  same parameter count (tests/benchmarks/test_plain_torch_parity.py);
- the speed anchor of `scripts/benchmark_plain_torch.py`: how fast the same
  training step runs in PyTorch without Keras.

It is not part of the installed package (`pyproject.toml` installs
`keras_gradattn` only) and needs `torch`; import it from a checkout.
"""

from plain_torch.models import GradAttn
from plain_torch.models import ResNet
from plain_torch.models import create_plain_model
from plain_torch.weight_transfer import load_keras_weights
