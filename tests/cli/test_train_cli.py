"""`gradattn-train` end to end: one shared run on digits, resume after a kill,
and every kind of bad input (exit 2, one line on stderr, nothing written)."""

import gzip
import json
import os
import signal
import subprocess
import time

import keras
import numpy as np
import pytest

from cli.conftest import TINY_MODEL_ARGS
from cli.conftest import isolated_environment
from cli.conftest import program_lines
from cli.conftest import run_train
from cli.conftest import train_command
from keras_gradattn import data
from keras_gradattn.cli.train import main
from keras_gradattn.callbacks import TrainingJournal

BACKEND = keras.backend.backend()
DIGITS_RUN = [
    "--dataset", "digits", "--model", "gradattn_learned_pe", *TINY_MODEL_ARGS,
    "--epochs", 2, "--max-train-samples", 128, "--batch-size", 32, "--verbose", 2,
    "--log-gradients", 2, "--probe-batches", 2,
]  # fmt: skip
METRIC_KEYS = (
    "top1_accuracy", "top3_accuracy", "top5_accuracy", "precision_macro", "precision_weighted",
    "recall_macro", "recall_weighted", "f1_macro", "f1_weighted", "ece", "nll",
    "confidence_mean", "confidence_std", "predictive_entropy_mean", "trainable_parameters",
    "training_time_s", "time_per_epoch_s", "epochs_run", "best_epoch", "best_val_accuracy",
)  # fmt: skip


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One real run of the program, shared by the tests that read its outputs."""
    tmp_path = tmp_path_factory.mktemp("digits_run")
    run_dir = tmp_path / "run"
    result = run_train([*DIGITS_RUN, "--output-dir", run_dir], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def read_json(path):
    with open(path) as file:
        return json.load(file)


def test_run_directory_holds_every_output(finished_run):
    run_dir, result = finished_run
    assert "Test top-1" in result.stdout
    assert "Traceback" not in result.stderr
    names = set(os.listdir(run_dir))
    assert {"config.json", "history.csv", "best.keras", "best.json", "metrics.json",
            "confusion_matrix.png", "status.json", "training_state.json", "logs"} <= names  # fmt: skip
    # No backup left behind after a finished run, no temporary files.
    assert "backup" not in names
    assert not [name for name in names if ".tmp" in name]
    assert read_json(run_dir / "status.json")["status"] == "finished"
    with open(run_dir / "confusion_matrix.png", "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    for folder in ("train", "validation"):
        events = os.listdir(run_dir / "logs" / folder)
        assert any(name.startswith("events.out.tfevents") for name in events)


def test_gradient_flow_outputs(finished_run):
    from keras_gradattn.analysis import GradientFlowReport
    from keras_gradattn.analysis import read_events
    from keras_gradattn.cli.analyze import main as analyze

    run_dir, _ = finished_run
    # 2 epochs of 4 steps, logged every 2 steps: per-layer tags at 4 steps.
    events = read_events(run_dir / "logs" / "gradients")
    assert "grad_norm_global" in events.scalars
    assert any(tag.startswith("grad_norm/stage2/block1/conv1") for tag in events.scalars)
    steps, _ = events.scalars["grad_norm_global"]
    assert len(steps) == 4
    # One encoder layer (TINY_MODEL_ARGS), five depth tokens named by tap.
    assert sorted(tag for tag in events.scalars if tag.startswith("depth_attention/")) == sorted(
        f"depth_attention/layer1/{tap}" for tap in ("stem", "stage1", "stage2", "stage3", "stage4")
    )

    report = GradientFlowReport.load(run_dir / "gradient_probe.json")
    assert len(report.losses) == 2 and not report.missing_layers
    summary = read_json(run_dir / "metrics.json")["gradient_flow"]
    assert summary["num_layers"] == len(report.layers) > 20
    assert summary["health_score"] == report.statistics["health_score"]

    assert analyze([str(run_dir), "--output", str(run_dir.parent / "analysis")]) == 0
    assert (run_dir.parent / "analysis" / "gradient_report.md").exists()


def test_config_records_everything_needed_to_rerun(finished_run):
    run_dir, _ = finished_run
    config = read_json(run_dir / "config.json")
    flags = config["train_config"]
    assert flags["backend"] == BACKEND == config["backend"]
    assert (flags["epochs"], flags["batch_size"], flags["max_train_samples"]) == (2, 32, 128)
    assert flags["learning_rate"] == 1e-3 and flags["weight_decay"] == 1e-4
    assert flags["model_args"]["stage_blocks"] == [1, 1, 1, 1]
    assert flags["split"] == "paper" and flags["seed"] == 42 and flags["log_gradients"] == 2
    assert config["dataset"]["sizes"]["train"] == 128
    assert config["dataset"]["spec"]["name"] == "digits"
    splits = data.load_dataset("digits", seed=42, max_train_samples=128)
    assert set(config["dataset"]["fingerprints"]) == {"train", "validation", "test"}
    assert config["dataset"]["fingerprints"]["train"] == _fingerprint(splits.train)
    assert config["model"]["config"]["num_classes"] == 10
    assert config["optimizer"]["class_name"] == "AdamL2"
    assert config["protocol"]["early_stopping"]["patience"] == 7
    assert {"keras", "numpy"} <= set(config["versions"])
    assert config["git"] is None or len(config["git"]["commit"]) == 40
    rerun = config["rerun_command"]
    assert rerun.startswith("gradattn-train --dataset digits --model gradattn_learned_pe")
    assert f"--backend {BACKEND}" in rerun and "--model-arg 'stage_blocks=(1, 1, 1, 1)'" in rerun


def test_history_and_metrics(finished_run):
    run_dir, _ = finished_run
    history = TrainingJournal.read_history(run_dir / "history.csv")
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"} <= set(history[0])
    results = read_json(run_dir / "metrics.json")
    assert set(METRIC_KEYS) <= set(results)
    assert results["epochs_run"] == 2 and results["num_examples"] == config_sizes(run_dir)["test"]
    accuracies = [row["val_accuracy"] for row in history]
    assert results["best_epoch"] == 1 + int(np.argmax(accuracies))
    assert results["best_val_accuracy"] == pytest.approx(max(accuracies))
    config = read_json(run_dir / "config.json")
    assert results["trainable_parameters"] == config["model"]["trainable_parameters"]
    assert results["training_time_s"] == pytest.approx(sum(row["epoch_seconds"] for row in history))
    for key in ("top1_accuracy", "ece", "confidence_mean", "f1_macro"):
        assert 0.0 <= results[key] <= 1.0


def test_metrics_come_from_the_best_checkpoint(finished_run):
    run_dir, _ = finished_run
    model = keras.saving.load_model(run_dir / "best.keras")
    splits = data.load_dataset("digits", seed=42, max_train_samples=128)
    test = data.make_pipeline(splits.test, splits.spec, batch_size=64)
    logits = model.predict(test, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == splits.test.labels))
    assert accuracy == pytest.approx(read_json(run_dir / "metrics.json")["top1_accuracy"], abs=1.5 / len(logits))


def test_resume_of_a_finished_run_does_nothing(finished_run, capsys):
    run_dir, _ = finished_run
    before = os.stat(run_dir / "metrics.json").st_mtime_ns
    assert main([*DIGITS_RUN, "--output-dir", run_dir, "--resume"]) == 0
    assert "already holds a finished run" in capsys.readouterr().out
    assert os.stat(run_dir / "metrics.json").st_mtime_ns == before


@pytest.mark.parametrize("placement", ["host", "device"])
def test_killed_run_resumes_with_every_epoch_once(placement, tmp_path, capsys):
    run_dir = tmp_path / "run"
    arguments = [
        "--dataset", "synthetic", "--dataset-arg", "num_examples=400", "--dataset-arg", "image_size=20",
        "--model", "resnet18", *TINY_MODEL_ARGS[:6], "--epochs", 4, "--batch-size", 32,
        "--verbose", 0, "--output-dir", run_dir, "--probe-batches", 0, "--data-placement", placement,
    ]  # fmt: skip
    process = subprocess.Popen(
        train_command(*arguments, "--log-gradients", 2), env=isolated_environment(tmp_path), cwd=str(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    history_path = run_dir / "history.csv"
    deadline = time.monotonic() + 240
    try:
        while len(TrainingJournal.read_history(history_path)) < 2:
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no second epoch within 240 s"
            time.sleep(0.05)
        # A second process in the same directory is refused, naming the
        # first (paused, so that the directory holds still), and changes nothing.
        process.send_signal(signal.SIGSTOP)
        before = snapshot(run_dir)
        assert main([*arguments, "--resume"]) == 2
        lines = program_lines(capsys.readouterr().err)
        assert len(lines) == 1 and f"is in use by process {process.pid} on host " in lines[0], lines
        assert snapshot(run_dir) == before
        # Killed, the first process leaves its lock file behind, not its lock.
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    before = TrainingJournal.read_history(history_path)
    assert read_json(run_dir / "status.json")["status"] == "running"
    assert os.path.isdir(run_dir / "backup")
    assert os.path.exists(run_dir / "run.lock")

    # Without --log-gradients, i.e. "auto" (10 steps here): the run keeps the
    # 2 it recorded, as runs recorded before "auto" keep their 100.
    assert main([*arguments, "--resume"]) == 0, capsys.readouterr().err
    assert read_json(run_dir / "config.json")["train_config"]["log_gradients"] == 2
    after = TrainingJournal.read_history(history_path)
    epochs = [row["epoch"] for row in after]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > len(before)
    # Epoch 1 finished (and was backed up) before the kill: kept, not re-run.
    assert after[0] == before[0]
    status = read_json(run_dir / "status.json")
    assert status["status"] == "finished" and len(status["attempts"]) == 2
    assert read_json(run_dir / "metrics.json")["epochs_run"] == len(epochs)
    assert not os.path.exists(run_dir / "backup")
    _assert_gradient_steps_continue(run_dir, epochs=len(epochs), batch_size=32, log_every=2)


def snapshot(folder):
    """Every file under `folder` with its size and modification time."""
    files = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            status = os.stat(os.path.join(parent, name))
            files[os.path.relpath(os.path.join(parent, name), folder)] = (status.st_size, status.st_mtime_ns)
    return files


def _assert_gradient_steps_continue(run_dir, epochs, batch_size, log_every):
    """The resumed process logs the steps after the epoch it resumed at, on
    the same grid as the first process: one curve, no step from both."""
    from keras_gradattn.analysis import read_events
    from keras_gradattn.analysis.event_reader import find_event_files

    steps_per_epoch = -(-read_json(run_dir / "config.json")["dataset"]["sizes"]["train"] // batch_size)
    total = epochs * steps_per_epoch
    event_files = find_event_files(run_dir / "logs" / "gradients")
    assert len(event_files) == 2, event_files  # one per process, in the order they ran
    first, resumed = (read_events(path) for path in event_files)
    # Weight norms are logged at every epoch end: the resumed process's
    # first one says where it started, after the epochs the backup kept.
    resumed_epoch_ends = resumed.scalars["weight_norm_global"][0].tolist()
    resumed_at = resumed_epoch_ends[0] - steps_per_epoch
    assert resumed_at in range(steps_per_epoch, total, steps_per_epoch)
    assert resumed_epoch_ends == list(range(resumed_at + steps_per_epoch, total + 1, steps_per_epoch))
    first_steps = first.scalars["grad_norm_global"][0].tolist()
    resumed_steps = resumed.scalars["grad_norm_global"][0].tolist()
    assert resumed_steps[0] > resumed_at and resumed_steps[-1] == total
    # The first process's steps up to the backup, then the resumed ones:
    # every multiple of log_every once, and the last step.
    kept = [step for step in first_steps if step <= resumed_at]
    expected = sorted(set(range(log_every, total + 1, log_every)) | {total})
    assert kept + resumed_steps == expected
    # The analysis reads both files; where the first process logged a step
    # of an epoch it did not finish, the resumed process's value is kept.
    merged_steps, merged_values = read_events(run_dir / "logs" / "gradients").scalars["grad_norm_global"]
    assert merged_steps.tolist() == expected
    np.testing.assert_array_equal(merged_values[len(kept) :], resumed.scalars["grad_norm_global"][1])


# --- bad input ------------------------------------------------------------------


def write_idx(folder, train_images=None, train_labels=None, image_magic=0x803):
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": (train_images if train_images is not None else rng.integers(0, 256, (30, 28, 28)), image_magic),
        "train-labels-idx1-ubyte": (train_labels if train_labels is not None else np.arange(30) % 10, 0x801),
        "t10k-images-idx3-ubyte": (rng.integers(0, 256, (10, 28, 28)), 0x803),
        "t10k-labels-idx1-ubyte": (np.arange(10) % 10, 0x801),
    }  # fmt: skip
    for name, (array, magic) in arrays.items():
        array = np.asarray(array, np.uint8)
        header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        with gzip.open(os.path.join(folder, name + ".gz"), "wb") as file:
            file.write(header + array.tobytes())
    return folder


def bad_idx(kind, tmp_path):
    folder = tmp_path / "fmnist"
    if kind == "corrupt":
        write_idx(folder, image_magic=0x1234)
    elif kind == "labels":
        write_idx(folder, train_labels=np.full(30, 12))
    elif kind == "shape":
        write_idx(folder, train_images=np.zeros((30, 20, 20)))
    else:
        folder.mkdir()
    return ["--dataset", "fashion_mnist", "--data-dir", folder]


BAD_INPUTS = {
    "unknown dataset": (["--dataset", "imagenet22k"], ["Unknown dataset 'imagenet22k'", "digits", "fashion_mnist"]),
    "unknown model": (["--model", "vit"], ["Unknown model 'vit'", "resnet18", "gradattn_rope"]),
    "data missing offline": ("missing", ["no data found", "IDX", "Get it"]),
    "corrupt file": ("corrupt", ["magic number", "train-images-idx3-ubyte.gz"]),
    "labels out of range": ("labels", ["labels out of range", "[12, 12]"]),
    "stored image shape": ("shape", ["images have shape (30, 20, 20, 1)", "(N, 28, 28, 1)"]),
    "image too small for the model": (
        ["--dataset", "synthetic", "--dataset-arg", "image_size=8"],
        ["cannot be built for synthetic", "(8, 8, 3)", "too small"],
    ),
    "zero epochs": (["--epochs", "0"], ["--epochs must be a positive integer, got 0"]),
    "negative batch": (["--batch-size", "-3"], ["--batch-size must be a positive integer, got -3"]),
    "non-integer epochs": (["--epochs", "ten"], ["argument --epochs: invalid int value"]),
    "unknown model argument": (["--model-arg", "depth=50"], ["unknown --model-arg depth", "stage_blocks"]),
    "malformed model argument": (["--model-arg", "depth"], ["expected KEY=VALUE"]),
    "unknown connection": (
        ["--model-arg", "connection=skip"],
        ["Unknown `connection`: 'skip'", "'identity', 'none', 'rezero'", "'hyper'"],
    ),
    "connection option without its connection": (
        ["--model-arg", "expansion_rate=2"],
        ["`expansion_rate` applies only to connection='hyper'", "connection='none'"],
    ),
    "expansion rate below one": (
        ["--model", "hyper_resnet18", "--model-arg", "expansion_rate=0"],
        ["`expansion_rate`", "must be an integer >= 1. Received: 0"],
    ),
    "negative layerscale epsilon": (
        ["--model", "layerscale_resnet18", "--model-arg", "layerscale_epsilon=-1e-06"],
        ["`layerscale_epsilon`", "must be a number >= 0. Received: -1e-06"],
    ),
    "unknown precision": (["--precision", "float8"], ["invalid choice: 'float8'"]),
    "unknown data placement": (
        ["--data-placement", "gpu"], ["argument --data-placement: invalid choice: 'gpu'", "'device', 'host'"]
    ),
    "negative learning rate": (["--lr", "-1"], ["--lr must be positive"]),
    "bad gradient log frequency": (
        ["--log-gradients", "sometimes"],
        ["argument --log-gradients", "'sometimes' is not a positive number of steps, 'auto', 'epoch' or 'off'"],
    ),
    "fractional gradient log frequency": (
        ["--log-gradients", "2.5"],
        ["argument --log-gradients", "'2.5' is not a positive number of steps, 'auto', 'epoch' or 'off'"],
    ),
    "negative probe batches": (["--probe-batches", "-1"], ["--probe-batches must be an integer >= 0, got -1"]),
    "zero steps per execution": (
        ["--steps-per-execution", "0"], ["--steps-per-execution must be a positive integer, got 0"]
    ),
}


def assert_one_line_error(code, stderr, expected, run_dir):
    assert code == 2
    lines = program_lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("train.py: error: ")
    for fragment in expected:
        assert fragment in lines[0]
    assert "Traceback" not in stderr
    assert not os.path.exists(run_dir), "a run directory was left behind"


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    arguments, expected = BAD_INPUTS[case]
    if isinstance(arguments, str):
        arguments = bad_idx(arguments, tmp_path)
    run_dir = tmp_path / "run"
    code = main([*arguments, "--output-dir", run_dir, "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, expected, run_dir)


def test_unwritable_output_directory(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    run_dir = blocker / "run"
    code = main(["--output-dir", run_dir])
    assert_one_line_error(code, capsys.readouterr().err, ["is a file, not a directory"], run_dir)


def test_existing_run_needs_resume_and_the_same_config(finished_run, tmp_path, capsys):
    run_dir, _ = finished_run
    config_before = (run_dir / "config.json").read_bytes()
    assert main([*DIGITS_RUN, "--output-dir", run_dir]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert main([*DIGITS_RUN, "--output-dir", run_dir, "--resume", "--lr", "0.01", "--seed", "7"]) == 2
    message = program_lines(capsys.readouterr().err)[0]
    assert "different configuration" in message
    assert "learning_rate (0.001 -> 0.01)" in message and "seed (42 -> 7)" in message
    assert (run_dir / "config.json").read_bytes() == config_before


def test_backend_flag_cannot_switch_an_imported_keras(tmp_path, capsys):
    other = "jax" if BACKEND != "jax" else "torch"
    code = main(["--backend", other, "--output-dir", tmp_path / "run"])
    assert_one_line_error(code, capsys.readouterr().err, [f"--backend {other}", "KERAS_BACKEND"], tmp_path / "run")


@pytest.mark.skipif(BACKEND != "torch", reason="the refusal is the torch backend's")
def test_steps_per_execution_above_one_is_refused_on_torch(tmp_path, capsys):
    code = main(["--steps-per-execution", "4", "--output-dir", tmp_path / "run"])
    expected = ["--steps-per-execution must be 1 on the torch backend", "got 4", "tensorflow and jax"]
    assert_one_line_error(code, capsys.readouterr().err, expected, tmp_path / "run")


@pytest.mark.skipif(BACKEND != "torch", reason="the refusal is the torch backend's")
def test_distribute_in_one_process_is_refused_on_torch(tmp_path, capsys):
    code = main(["--distribute", "--output-dir", tmp_path / "run"])
    expected = ["needs several processes", "torchrun", "--num-processes N"]
    assert_one_line_error(code, capsys.readouterr().err, expected, tmp_path / "run")


def test_program_exit_status_and_stderr(tmp_path):
    """Through the real entry point: status 2, one line, no traceback, and
    `--backend` honoured (the wrapper sets it before Keras is imported)."""
    other = "jax" if BACKEND != "jax" else "tensorflow"
    run_dir = tmp_path / "run"
    result = run_train(["--backend", other, "--epochs", "-1", "--output-dir", run_dir], tmp_path)
    assert_one_line_error(result.returncode, result.stderr, ["--epochs must be a positive integer"], run_dir)
    assert main(["--help"]) == 0


def _fingerprint(split):
    import hashlib

    digest = hashlib.sha256(split.images.tobytes())
    digest.update(split.labels.astype(np.int64).tobytes())
    return digest.hexdigest()


def config_sizes(run_dir):
    return read_json(run_dir / "config.json")["dataset"]["sizes"]


def test_every_flag_is_documented():
    from keras_gradattn.cli.train import build_parser

    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "docs", "training.md")) as file:
        documentation = file.read()
    flags = [option for action in build_parser()._actions for option in action.option_strings if option.startswith("--")]
    missing = [flag for flag in flags if flag != "--help" and f"`{flag}" not in documentation]
    assert not missing, f"flags missing from docs/training.md: {missing}"


def test_divergence_exits_3_and_says_so_in_the_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    arguments = [
        "--dataset", "synthetic", "--dataset-arg", "num_examples=100", "--model", "resnet18",
        *TINY_MODEL_ARGS[:6], "--epochs", 2, "--batch-size", 32, "--lr", 1e30, "--quiet",
        "--output-dir", run_dir,
    ]  # fmt: skip
    assert main(arguments) == 3
    line = program_lines(capsys.readouterr().err)[0]
    assert line.startswith("train.py: error: training diverged: training loss became")
    status = read_json(run_dir / "status.json")
    assert status["status"] == "diverged" and status["diverged"]["epoch"] == 1
    assert not os.path.exists(run_dir / "metrics.json")
    assert main([*arguments, "--resume"]) == 2
    assert "diverged" in program_lines(capsys.readouterr().err)[0]
