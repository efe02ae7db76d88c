"""Where a Keras-on-PyTorch training step spends its time on a GPU (torch.profiler).

Produced results/benchmarks/torch_profile_h100.txt on an H100 (torch 2.11 CUDA,
Keras 3.15.1), run from the repository root:

    KERAS_BACKEND=torch PYTHONPATH=. python results/benchmarks/profile_torch_step.py > torch_profile.txt
"""

import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity  # noqa: E402
from torch.profiler import profile  # noqa: E402

import keras_gradattn  # noqa: E402

STEPS, BATCH = 10, 128

images = np.random.rand(BATCH * STEPS, 28, 28, 1).astype("float32")
labels = (np.arange(BATCH * STEPS) % 10).astype("int32")
model = keras_gradattn.create_model("resnet18", num_classes=10, input_shape=(28, 28, 1))
model.compile()
model.fit(images, labels, batch_size=BATCH, epochs=1, verbose=0)  # warm-up
torch.cuda.synchronize()
start = time.perf_counter()
model.fit(images, labels, batch_size=BATCH, epochs=1, verbose=0)
torch.cuda.synchronize()
print("resnet18 ms/step", 1000 * (time.perf_counter() - start) / STEPS)
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
    model.fit(images, labels, batch_size=BATCH, epochs=1, verbose=0)
    torch.cuda.synchronize()
averages = profiler.key_averages()
print(averages.table(sort_by="cpu_time_total", row_limit=18, max_name_column_width=45))
print(averages.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=45))
