"""`scripts/benchmark.py` at tiny settings: the structure of what it measures and
writes, never its speed."""

import json
import os

import keras
import pytest

from keras_gradattn import benchmarks
from keras_gradattn.benchmarks.reporting import JIT_MEANINGS
from keras_gradattn.cli import benchmark
from testing_utils import SMALL_BACKBONE
from testing_utils import SMALL_ENCODER

pytestmark = pytest.mark.backend_independent

BACKEND = keras.backend.backend()
TINY = ["--models", "resnet18,gradattn_learned_pe", "--batch-sizes", "8", "--precisions", "float32",
        "--rounds", "1", "--steps-per-round", "1", "--eager-steps-per-round", "1",
        "--pipeline-sources", "sklearn,medmnist_npz", "--pipeline-batches", "2",
        "--pipeline-batch-size", "16", "--pipeline-models", "resnet18"]  # fmt: skip
for key, value in {**SMALL_BACKBONE, "stage_blocks": (1, 1, 1, 1), **SMALL_ENCODER, "num_layers": 1}.items():
    TINY += ["--model-arg", f"{key}={value!r}"]


@pytest.fixture(scope="module")
def tiny_report():
    args = benchmark.build_parser().parse_args(TINY)
    return {"machine": {"backend": BACKEND, "processor": "cpu", "cpu_count": 2},
            "models": benchmark.measure_models(args, BACKEND),
            "pipelines": benchmark.measure_pipelines(args, BACKEND)}  # fmt: skip


def test_model_rows(tiny_report):
    rows = tiny_report["models"]
    modes = benchmark.AUTO_JIT_MODES[BACKEND]
    # 2 models x 1 batch x 1 precision x the backend's modes x (train, infer).
    assert len(rows) == 2 * len(modes) * 2
    assert {row["jit"] for row in rows} == set(modes)
    for row in rows:
        assert row["images_per_second"] > 0 and row["median_step_ms"] > 0
        assert row["jit_meaning"] == JIT_MEANINGS[(BACKEND, row["jit"])]
        assert row["input_shape"] == "28x28x1" and row["batch_size"] == 8
    baseline = [row for row in rows if row["model"] == "resnet18"]
    assert all(row["step_time_ratio_vs_resnet18"] == pytest.approx(1.0) for row in baseline)


def test_pipeline_rows(tiny_report):
    rows = tiny_report["pipelines"]
    kinds = {"tf.data", "pydataset"}
    assert {(row["source"], row["pipeline"]) for row in rows} == {
        (source, kind) for source in ("sklearn", "medmnist_npz") for kind in kinds}
    by_source = {row["source"]: row for row in rows}
    assert by_source["sklearn"]["input_shape"] == "32x32x1"
    assert by_source["medmnist_npz"]["input_shape"] == "64x64x3"
    # The demand is the model as users train it: Keras' default compilation,
    # which on a machine without a GPU means no XLA for TensorFlow.
    reference = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    reference.compile(jit_compile="auto")
    default_jit = "on" if reference.jit_compile else "off"
    for row in rows:
        assert row["demand_model"] == "resnet18"
        assert row["demand_jit"] == default_jit
        assert row["ratio_to_demand"] == pytest.approx(row["images_per_second"] / row["demand_images_per_second"])


def test_targets_and_markdown(tiny_report):
    checks = benchmarks.evaluate_targets([tiny_report])
    targets = {check["target"] for check in checks}
    assert any(target.startswith("pipeline >= 3x") for target in targets)
    if BACKEND in ("jax", "tensorflow"):
        assert any(target.startswith("GradAttn / ResNet-18 step time") for target in targets)
    args = benchmark.build_parser().parse_args(TINY)
    text = benchmarks.format_throughput_markdown(
        [tiny_report], checks, "python scripts/benchmark.py ...", rounds=args.rounds,
        pipeline_batch_size=args.pipeline_batch_size, pipeline_models=args.pipeline_models,
    )  # fmt: skip
    assert "## Models" in text and "## Input pipelines" in text and "## Targets" in text
    assert text.count("| gradattn_learned_pe |") == len(benchmark.AUTO_JIT_MODES[BACKEND])


def test_torch_against_jax_target_from_fabricated_rows():
    def row(backend, jit, images_per_second):
        return {"backend": backend, "jit": jit, "jit_meaning": JIT_MEANINGS[(backend, jit)],
                "model": "resnet18", "batch_size": 128, "precision": "float32", "mode": "train",
                "images_per_second": images_per_second, "step_time_ratio_vs_resnet18": 1.0}  # fmt: skip

    reports = [{"models": [row("jax", "on", 400.0), row("jax", "off", 50.0)]},
               {"models": [row("torch", "off", 100.0)]}]  # fmt: skip
    (check,) = [c for c in benchmarks.evaluate_targets(reports) if c["target"].startswith("torch")]
    assert check["value"] == pytest.approx(4.0) and not check["met"]
    assert "MISSED in 1" in benchmarks.format_targets([check])


def test_main_writes_json_and_markdown(tmp_path, monkeypatch, tiny_report):
    monkeypatch.setattr(benchmark, "run_backend", lambda argv, backend: tiny_report)
    output = tmp_path / "bench"
    assert benchmark.main([*TINY, "--backends", BACKEND, "--output", str(output)]) == 0
    with open(f"{output}.json") as file:
        written = json.load(file)
    assert written["command"].startswith("python scripts/benchmark.py")
    assert written["reports"][0]["models"] and written["targets"]
    assert os.path.exists(f"{output}.md")
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]


@pytest.mark.parametrize("arguments", [["--backends", "mxnet"], ["--jit-modes", "maybe"],
                                       ["--batch-sizes", "0"], ["--skip-models", "--skip-pipelines"]])
def test_bad_input_exits_2(arguments, capsys):
    assert benchmark.main(arguments) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("benchmark.py: error: ")
