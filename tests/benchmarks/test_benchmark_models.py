"""`scripts/benchmark_models.py`: its table and its handling of bad input (not its speed)."""

import pytest

from keras_gradattn.benchmarks import format_models_table
from keras_gradattn.cli import benchmark_models

pytestmark = pytest.mark.backend_independent


def _report(backend, ratios):
    return {
        "machine": {"backend": backend, "processor": "cpu", "cpu_count": 2, "gpus": []},
        "results": [
            {"input_shape": "28x28x1", "model": name, "images_per_second": 100.0 / ratio,
             "median_step_ms": 10.0 * ratio, "spread": 0.05, "step_time_ratio_vs_resnet18": ratio}
            for name, ratio in ratios.items()
        ],
    }  # fmt: skip


def test_table_marks_each_backend_target():
    args = benchmark_models.build_parser().parse_args([])
    reports = [_report("jax", {"resnet18": 1.0, "gradattn_rope": 1.05}),
               _report("torch", {"resnet18": 1.0, "gradattn_rope": 1.25})]  # fmt: skip
    table = format_models_table(
        reports, batch_size=args.batch_size, precision=args.precision, jit_compile=args.jit_compile,
        steps_per_round=args.steps_per_round, rounds=args.rounds,
    )  # fmt: skip
    assert "| jax | 28x28x1 | gradattn_rope | 95 | 10.5 | 5% | 1.050 | <= 1.10 met |" in table
    assert "| torch | 28x28x1 | gradattn_rope | 80 | 12.5 | 5% | 1.250 | <= 1.20 MISSED |" in table
    # The baseline row carries no target.
    assert "| jax | 28x28x1 | resnet18 | 100 | 10.0 | 5% | 1.000 |  |" in table


def test_bad_input_is_one_line_and_exit_status_2(capsys):
    assert benchmark_models.main(["--rounds", "0"]) == 2
    assert benchmark_models.main(["--backends", "theano"]) == 2
    assert benchmark_models.main(["--input-shapes", "28x28"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("benchmark_models.py: error:") for line in lines)
