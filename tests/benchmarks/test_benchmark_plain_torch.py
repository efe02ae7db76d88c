"""`scripts/benchmark_plain_torch.py`: its table, its PASS/MISS lines against
the numbers it measured, and its handling of bad input (not its speed)."""

import json
import re

import pytest

from keras_gradattn.cli import benchmark_plain_torch as bench

pytestmark = pytest.mark.backend_independent

MINIMUM = {label: minimum for label, _, minimum in bench.TARGETS}


def _fake_times():
    # Seconds per call, three rounds; plain PyTorch takes 1.0 s each round.
    return {
        "plain_torch": {"resnet18": [1.0, 1.0, 1.0], "gradattn_rope": [1.0, 1.0, 1.0]},
        "torch": {"resnet18": [1.25, 1.0, 1.1], "gradattn_rope": [0.8, 0.8, 0.8]},
        "jax": {"resnet18": [4.0, 5.0, 2.0], "gradattn_rope": [2.5, 2.5, 2.5]},
    }


def test_ratios_are_per_round_medians_with_their_spread():
    summary = bench.summarize(_fake_times(), images_per_call=100)
    torch_resnet = summary["resnet18"]["torch"]
    assert torch_resnet["images_per_second"] == 100 / 1.1
    assert torch_resnet["ratio"] == 1 / 1.1
    assert (torch_resnet["ratio_min"], torch_resnet["ratio_max"]) == (0.8, 1.0)
    assert summary["resnet18"]["plain_torch"]["ratio"] == 1.0


def test_targets_pass_or_miss_by_the_median_ratio():
    verdicts = bench.evaluate_targets(bench.summarize(_fake_times(), images_per_call=100))
    table = {(model, label): (backend, round(ratio, 3), result) for model, label, backend, ratio, result in verdicts}
    assert table[("resnet18", "fastest backend >= 1.0x")] == ("torch", 0.909, "MISS")
    assert table[("resnet18", "torch backend >= 0.9x")] == ("torch", 0.909, "PASS")
    assert table[("resnet18", "jax backend >= 0.5x")] == ("jax", 0.25, "MISS")
    assert table[("gradattn_rope", "fastest backend >= 1.0x")] == ("torch", 1.25, "PASS")
    assert table[("gradattn_rope", "fastest backend >= 1.2x (stretch)")] == ("torch", 1.25, "PASS")
    assert table[("gradattn_rope", "jax backend >= 0.5x")] == ("jax", 0.4, "MISS")
    # Plain PyTorch is the reference, never a contender for "fastest".
    assert all(backend != bench.PLAIN for _, _, backend, _, _ in verdicts)


def test_a_target_of_an_unmeasured_backend_is_left_out():
    times = {name: per_model for name, per_model in _fake_times().items() if name != "jax"}
    verdicts = bench.evaluate_targets(bench.summarize(times, images_per_call=100))
    assert not [v for v in verdicts if v[1] == "jax backend >= 0.5x"]
    assert len(verdicts) == 2 * 3


def test_bad_input_is_one_line_and_exit_status_2(capsys, tmp_path):
    output = str(tmp_path / "out")
    assert bench.main(["--rounds", "0", "--output", output]) == 2
    assert bench.main(["--models", "vgg16", "--output", output]) == 2
    assert bench.main(["--backends", "theano", "--output", output]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("benchmark_plain_torch.py: error:") for line in lines)
    assert "vgg16" in lines[1] and "resnet18" in lines[1]
    assert not list(tmp_path.iterdir())


def test_end_to_end_with_tiny_sizes(tmp_path):
    output = tmp_path / "plain_torch_cpu"
    status = bench.main([
        "--backends", "torch", "--models", "resnet18", "--batch-size", "2",
        "--steps", "1", "--rounds", "2", "--output", str(output),
    ])  # fmt: skip
    assert status == 0
    report = output.with_suffix(".md").read_text()
    results = json.loads(output.with_suffix(".json").read_text())
    assert len(results["times_seconds"]["torch"]["resnet18"]) == 2
    assert results["worker_settings"]["torch"]["dtype_policy"] == "float32"
    figures = results["summary"]["resnet18"]["torch"]
    assert f"| resnet18 | torch | {figures['images_per_second']:.1f} | {figures['ratio']:.2f}x |" in report
    rows = re.findall(r"^\| resnet18 \| ([^|]+) \| torch \| ([0-9.]+)x \| (PASS|MISS) \|$", report, re.M)
    # Only the torch backend ran: it is the fastest, and the JAX target is absent.
    assert [label.strip() for label, _, _ in rows] == [
        "fastest backend >= 1.0x", "fastest backend >= 1.2x (stretch)", "torch backend >= 0.9x",
    ]
    for label, ratio, result in rows:
        assert ratio == f"{figures['ratio']:.2f}"
        assert result == ("PASS" if figures["ratio"] >= MINIMUM[label.strip()] else "MISS")
    assert report.startswith("Command: `python scripts/benchmark_plain_torch.py --backends torch")


def test_jax_variants_are_judged_by_the_jax_target_only():
    times = _fake_times()
    times["jax+bfloat16"] = {"resnet18": [1.5, 1.5, 1.5], "gradattn_rope": [0.5, 0.5, 0.5]}
    verdicts = bench.evaluate_targets(bench.summarize(times, images_per_call=100))
    judged = {(model, label, backend): result for model, label, backend, _, result in verdicts}
    assert judged[("resnet18", "jax backend >= 0.5x", "jax+bfloat16")] == "PASS"
    assert judged[("resnet18", "jax backend >= 0.5x", "jax")] == "MISS"
    # A variant is twice plain PyTorch's speed on gradattn_rope, yet the
    # fastest-backend target still names a backend run as it is.
    assert judged[("gradattn_rope", "fastest backend >= 1.0x", "torch")] == "PASS"
    assert not [v for v in verdicts if v[2] == "jax+bfloat16" and v[1] != "jax backend >= 0.5x"]


def test_a_variant_worker_gets_its_xla_flags_or_its_dtype_policy():
    assert bench._variant("jax+xla_onednn") == {"xla_flags": "--xla_cpu_use_onednn=true"}
    assert bench._variant("jax+bfloat16") == {"dtype_policy": "mixed_bfloat16"}
    assert bench._variant("jax") == bench._variant("torch") == bench._variant(bench.PLAIN) == {}


def test_an_unknown_variant_is_one_line_and_exit_status_2(capsys, tmp_path):
    assert bench.main(["--jax-variants", "xla_turbo", "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("benchmark_plain_torch.py: error:") and "xla_turbo" in error and "xla_onednn" in error
    assert "\n" not in error and not list(tmp_path.iterdir())
