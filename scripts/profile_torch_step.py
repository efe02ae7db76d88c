#!/usr/bin/env python
"""Where a Keras-on-PyTorch training step of ResNet-18 spends its time (torch.profiler; GPU or CPU).

Prints the milliseconds per `fit` step, then torch.profiler's tables of one
epoch. It produced results/benchmarks/torch_profile_h100.txt on an H100
(torch 2.11 CUDA, Keras 3.15.1), when it lived in results/benchmarks/:

    KERAS_BACKEND=torch python scripts/profile_torch_step.py > torch_profile.txt
"""

import argparse
import os
import sys
import time

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STEPS, BATCH = 10, 128


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "torch")

    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    import keras_gradattn

    def synchronize():
        # On a CPU every op has finished when it returns.
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    images = np.random.rand(BATCH * STEPS, 28, 28, 1).astype("float32")
    labels = (np.arange(BATCH * STEPS) % 10).astype("int32")
    model = keras_gradattn.create_model("resnet18", num_classes=10, input_shape=(28, 28, 1))
    model.compile()
    model.fit(images, labels, batch_size=BATCH, epochs=1, verbose=0)  # warm-up
    synchronize()
    start = time.perf_counter()
    model.fit(images, labels, batch_size=BATCH, epochs=1, verbose=0)
    synchronize()
    print("resnet18 ms/step", 1000 * (time.perf_counter() - start) / STEPS)
    with profile(activities=activities) as profiler:
        model.fit(images, labels, batch_size=BATCH, epochs=1, verbose=0)
        synchronize()
    averages = profiler.key_averages()
    print(averages.table(sort_by="cpu_time_total", row_limit=18, max_name_column_width=45))
    print(averages.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=45))
    return 0


if __name__ == "__main__":
    sys.exit(main())
