#!/usr/bin/env python
"""The MedMNIST tf.data training pipeline measured alone (no model in the process), on a stand-in BloodMNIST file.

A check on results/benchmarks/pipelines_cpu.md, where the same pipeline, timed
in rounds interleaved with ResNet-18 training in one process on a busy
machine, delivered 91 images/s. Always runs on TensorFlow (tf.data). Its
output is committed as results/benchmarks/probe_medmnist_pipeline.txt:

    python scripts/probe_medmnist_pipeline.py > results/benchmarks/probe_medmnist_pipeline.txt
"""

import argparse
import os
import sys
import tempfile
import time

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH, BATCHES = 128, 8
# Batches per call of the benchmark's own timing function: 2,048 images, which
# cross an epoch of the stand-in file.
BENCHMARK_BATCHES = 20


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    # Set only now, so that --help leaves the environment alone.
    os.environ["KERAS_BACKEND"] = "tensorflow"

    from keras_gradattn import data
    from keras_gradattn.benchmarks import pipeline_function
    from keras_gradattn.benchmarks import write_fake_medmnist_npz

    splits = data.load_dataset("bloodmnist", data_dir=write_fake_medmnist_npz(tempfile.mkdtemp()))
    for augment in (False, True):
        pipeline = data.make_pipeline(
            splits.train, splits.spec, batch_size=BATCH, training=True, seed=0, augment=augment
        )
        batches = iter(pipeline)
        next(batches)  # tracing, buffers
        start = time.perf_counter()
        for _ in range(BATCHES):
            next(batches)
        print(f"tf.data, augment={augment}: {BATCH * BATCHES / (time.perf_counter() - start):.0f} images/s")

    pull = pipeline_function(
        data.make_pipeline(splits.train, splits.spec, batch_size=BATCH, training=True, seed=0), BENCHMARK_BATCHES
    )
    pull()
    for round_index in range(3):
        start = time.perf_counter()
        pull()
        images_per_second = BENCHMARK_BATCHES * BATCH / (time.perf_counter() - start)
        print(f"benchmark timing, round {round_index + 1}: {images_per_second:.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
