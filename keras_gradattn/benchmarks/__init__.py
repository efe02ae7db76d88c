"""Throughput benchmarks: the library behind `gradattn-benchmark`,
`benchmark_models.py` and the probes in scripts/.

- `timing`: interleaved, warmed-up timing of `fit`, `predict` and input
  pipelines (`measure_interleaved` and the callables it times);
- `environment`: the machine, backend and versions a measurement ran with;
- `fake_medmnist`: a stand-in MedMNIST file to time the npz reader with;
- `fake_fashion_mnist`: stand-in FashionMNIST IDX files, to time whole epochs with;
- `reporting`: the targets met or missed, and the markdown tables.

The command-line modules (`keras_gradattn.cli.benchmark`,
`keras_gradattn.cli.benchmark_models`) only parse arguments and run the
grid, one backend per subprocess.
"""

from keras_gradattn.benchmarks.environment import describe_environment
from keras_gradattn.benchmarks.fake_fashion_mnist import write_fake_fashion_mnist
from keras_gradattn.benchmarks.fake_medmnist import write_fake_medmnist_npz
from keras_gradattn.benchmarks.reporting import evaluate_targets
from keras_gradattn.benchmarks.reporting import format_models_table
from keras_gradattn.benchmarks.reporting import format_targets
from keras_gradattn.benchmarks.reporting import format_throughput_markdown
from keras_gradattn.benchmarks.timing import Measurement
from keras_gradattn.benchmarks.timing import call_seconds
from keras_gradattn.benchmarks.timing import device_resident_model
from keras_gradattn.benchmarks.timing import inference_function
from keras_gradattn.benchmarks.timing import measure_interleaved
from keras_gradattn.benchmarks.timing import pipeline_function
from keras_gradattn.benchmarks.timing import median_call_seconds
from keras_gradattn.benchmarks.timing import synthetic_batch
from keras_gradattn.benchmarks.timing import training_function
