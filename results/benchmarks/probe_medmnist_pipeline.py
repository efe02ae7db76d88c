"""The MedMNIST tf.data training pipeline measured alone (no model in the process).

A check on pipelines_cpu.md, where the same pipeline, timed in rounds interleaved
with ResNet-18 training in one process on a busy machine, delivered 91 images/s.
Run from the repository root; output in probe_medmnist_pipeline.txt:

    PYTHONPATH=. python results/benchmarks/probe_medmnist_pipeline.py
"""

import os
import tempfile
import time

os.environ["KERAS_BACKEND"] = "tensorflow"

from keras_gradattn import data  # noqa: E402
from keras_gradattn.cli.benchmark import _medmnist_npz  # noqa: E402
from keras_gradattn.cli.benchmark import pipeline_function  # noqa: E402

BATCH, BATCHES = 128, 8

splits = data.load_dataset("bloodmnist", data_dir=_medmnist_npz(tempfile.mkdtemp()))
for augment in (False, True):
    pipeline = data.make_pipeline(splits.train, splits.spec, batch_size=BATCH, training=True, seed=0, augment=augment)
    batches = iter(pipeline)
    next(batches)  # tracing, buffers
    start = time.perf_counter()
    for _ in range(BATCHES):
        next(batches)
    print(f"tf.data, augment={augment}: {BATCH * BATCHES / (time.perf_counter() - start):.0f} images/s")

# The benchmark's own timing function: 20 batches a call, crossing epochs (2,048 images).
pull = pipeline_function(data.make_pipeline(splits.train, splits.spec, batch_size=BATCH, training=True, seed=0), 20)
pull()
for round_index in range(3):
    start = time.perf_counter()
    pull()
    print(f"benchmark timing, round {round_index + 1}: {20 * BATCH / (time.perf_counter() - start):.0f} images/s")
