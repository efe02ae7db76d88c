"""Command-line programs of keras_gradattn (see docs/training.md)."""
