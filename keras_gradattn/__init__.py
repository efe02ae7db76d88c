"""GradAttn in Keras 3: attention-routed depth tokens instead of residual shortcuts."""

__version__ = "0.1.0"
