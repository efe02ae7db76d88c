"""`scripts/reproduce.py`: bad input, the plan, a grid with a fake runner, the
aggregate-only and docs-only modes, and one tiny real grid end to end."""

import csv
import json
import os
import shutil
import subprocess
import sys

import keras
import pytest

from cli.conftest import TINY_MODEL_ARGS
from cli.conftest import isolated_environment
from cli.conftest import program_lines
from keras_gradattn.cli import reproduce
from keras_gradattn.experiments import grid
from keras_gradattn.experiments import tensorboard_hparams
from reproduce_testing import fake_run
from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent

BACKEND = keras.backend.backend()


def run_main(arguments, tmp_path, capsys):
    """main() in this process, with every path under tmp_path."""
    defaults = ["--results-root", str(tmp_path / "results"), "--docs", str(tmp_path / "results.md")]
    if "--docs-only" not in arguments and "--experiment" in arguments:
        defaults += ["--runs-dir", str(tmp_path / "runs")]
    status = reproduce.main([*arguments, *defaults])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--experiment", "e", "--datasets", "digitz"], "unknown dataset 'digitz'; allowed: "),
        (["--experiment", "e", "--models", "resnet19"], "unknown model 'resnet19'; allowed: "),
        (["--experiment", "e", "--backends", "jax,mxnet"], "unknown backend 'mxnet'; allowed: tensorflow, jax, torch"),
        (["--experiment", "e", "--seeds", "42,0"], "positive integers, got '42,0'"),
        (["--experiment", "e", "--seeds", "-1"], "positive integers, got '-1'"),
        (["--experiment", "e", "--seeds", "42,42"], "lists a seed twice"),
        (["--experiment", "e", "--epochs", "0"], "expected a positive integer, got '0'"),
        (["--experiment", "e", "--dry-run", "--aggregate-only"], "not allowed with argument"),
        (["--experiment", "e", "--aggregate-only", "--seeds", "42"], "takes no grid flags; received --seeds"),
        (["--docs-only", "--experiment", "e"], "--docs-only takes no grid flags; received --experiment"),
        (["--datasets", "digits"], "--experiment NAME is required"),
        (["--experiment", "a/b"], "received 'a/b'"),
        (["--experiment", "e", "--models", "resnet18", "--model-arg", "token_dim=16"],
         "--model-arg 'token_dim' is accepted by none of the models resnet18"),
        (["--experiment", "e", "--model-arg", "nokey"], "expected KEY=VALUE, got 'nokey'"),
        (["--experiment", "e", "--aggregate-only"], "no experiment 'e' under"),
        (["--experiment", "e", "--jobs", "0"], "expected a positive integer, got '0'"),
        (["--experiment", "e", "--jobs", "3", "--devices", "0,1"],
         "2 GPUs (0,1) do not split evenly over 3 jobs; allowed: a number of jobs that divides 2"),
        (["--experiment", "e", "--jobs", "999"], "999 jobs would oversubscribe the "),
        (["--experiment", "e", "--ray", "--jobs", "2"], "--jobs is for this machine; with --ray"),
        (["--experiment", "e", "--gpus-per-run", "1"], "--gpus-per-run needs --ray"),
        (["--experiment", "e", "--aggregate-only", "--jobs", "2"], "takes no grid flags; received --jobs"),
    ],
)
def test_bad_input_exits_2_with_one_line(arguments, message, tmp_path, capsys):
    status, out, err = run_main(arguments, tmp_path, capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reproduce.py: error: ")
    assert message in lines[0]
    assert not os.path.exists(tmp_path / "results") and not os.path.exists(tmp_path / "runs")


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(grid, "run_subprocess", lambda *args: pytest.fail("a dry run trained"))
    fake_run(tmp_path / "runs" / "digits" / "resnet18" / "seed42-jax")
    status, out, _ = run_main(
        ["--experiment", "e", "--models", "resnet18,gradattn_rope", "--seeds", "42,43", "--backends", "jax",
         "--epochs", "3", "--model-arg", "token_dim=16", "--dry-run"], tmp_path, capsys)  # fmt: skip
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "run 1/4: digits resnet18 seed 42 (jax): skip (finished)"
    assert lines[1] == "run 2/4: digits gradattn_rope seed 42 (jax): start"
    assert "--epochs 3 --model-arg token_dim=16" in lines[2]
    assert "run 3/4: digits resnet18 seed 43 (jax): start" in lines
    # resnet18 does not take encoder sizes: no --model-arg on its command.
    resnet_command = lines[lines.index("run 3/4: digits resnet18 seed 43 (jax): start") + 1]
    assert "--model-arg" not in resnet_command
    assert lines[-1] == "dry run: 4 runs (1 finished, 3 new); nothing was started"
    assert not os.path.exists(tmp_path / "results")


def test_grid_with_a_fake_runner_writes_every_table(tmp_path, capsys, monkeypatch):
    def fake_runner(command, log_path, environment, timeout):
        model = command[command.index("--model") + 1]
        seed = int(command[command.index("--seed") + 1])
        backend = command[command.index("--backend") + 1]
        if model == "gradattn_rope" and seed == 43:
            return 1  # crashed before writing anything
        top1 = 0.8 + 0.01 * (seed - 42) + (0.02 if model == "resnet18" else 0.0)
        fake_run(command[command.index("--output-dir") + 1], dataset="digits", model=model, seed=seed,
                 backend=backend, top1=top1, epochs=3)
        return 0

    monkeypatch.setattr(grid, "run_subprocess", fake_runner)
    arguments = ["--experiment", "e", "--models", "resnet18,gradattn_nope,gradattn_rope", "--seeds", "42,43",
                 "--backends", "jax,torch", "--epochs", "3", "--title", "Fake grid"]  # fmt: skip
    status, out, _ = run_main(arguments, tmp_path, capsys)
    assert status == 1  # one cell failed (twice: once per backend), the rest are tabulated
    assert "run 12/12:" in out and "FAILED" in out and "10 run, 0 already finished, 2 failed" in out
    # TensorBoard HParams: one session per finished run, the experiment at the top.
    assert f"wrote TensorBoard HParams summaries of 10 finished runs: tensorboard --logdir {tmp_path / 'runs'}" in out
    session = tmp_path / "runs" / "digits" / "gradattn_nope" / "seed43-torch" / "hparams"
    assert os.listdir(session) == [tensorboard_hparams.RUN_FILE_NAME]
    assert not os.path.exists(tmp_path / "runs" / "digits" / "gradattn_rope" / "seed43-torch" / "hparams")
    assert os.path.exists(tmp_path / "runs" / tensorboard_hparams.EXPERIMENT_FILE_NAME)
    results = tmp_path / "results" / "e"
    assert sorted(os.listdir(results)) == [
        "README.md", "cross_backend.csv", "experiment.json", "paired.csv", "runs", "runs.csv", "summary.csv"]
    with open(results / "paired.csv") as file:
        paired = list(csv.DictReader(file))
    nope = [row for row in paired if row["model"] == "gradattn_nope" and row["backend"] == "jax"][0]
    assert nope["n"] == "2" and float(nope["mean_difference_pp"]) == pytest.approx(-2.0)
    rope = [row for row in paired if row["model"] == "gradattn_rope" and row["backend"] == "jax"][0]
    assert rope["n"] == "1"
    with open(results / "cross_backend.csv") as file:
        assert len(list(csv.DictReader(file))) == 5
    assert (tmp_path / "results.md").read_text().startswith("# Reproducing the paper's comparison")
    meta = json.loads((results / "experiment.json").read_text())
    assert meta["grid"]["backends"] == ["jax", "torch"] and meta["title"] == "Fake grid"

    # Rerun: finished cells are skipped, the failed one is retried; a changed budget is refused.
    status, out, _ = run_main(arguments, tmp_path, capsys)
    assert "10 already finished" in out
    status, _, err = run_main([*arguments[:-4], "--epochs", "4"], tmp_path, capsys)
    assert status == 2 and "use another --experiment" in err

    # With the run directories gone (a fresh checkout holds only results/), the collected runs are not rerun.
    shutil.rmtree(tmp_path / "runs")
    status, out, _ = run_main(arguments, tmp_path, capsys)
    assert "10 already finished" in out and "finished already (its results are collected)" in out


def test_ctrl_c_exits_130_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    """The running cell's processes are stopped by the runner
    (tests/experiments/test_grid_processes.py); here: what the program says."""
    started = []

    def interrupted_runner(command, log_path, environment, timeout):
        started.append(command)
        raise KeyboardInterrupt

    monkeypatch.setattr(grid, "run_subprocess", interrupted_runner)
    arguments = ["--experiment", "e", "--models", "resnet18,gradattn_rope", "--seeds", "42", "--backends", "jax"]
    status, out, err = run_main(arguments, tmp_path, capsys)
    assert status == 130 and len(started) == 1  # the grid stopped at the first cell
    assert err.strip().splitlines() == ["reproduce.py: error: interrupted; rerun the same command to resume"]
    assert "grid done" not in out


def test_aggregate_only_and_docs_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(grid, "run_subprocess", lambda *args: pytest.fail("aggregate-only trained"))
    results = tmp_path / "results" / "e"
    os.makedirs(results)
    (results / "experiment.json").write_text(json.dumps({"name": "e", "invocations": [{"command": "c"}]}))
    # Finished in the runs folder but not yet collected: --aggregate-only collects it.
    fake_run(tmp_path / "runs" / "digits" / "resnet18" / "seed42-jax")
    fake_run(tmp_path / "runs" / "digits" / "gradattn_rope" / "seed42-jax", model="gradattn_rope", top1=0.95)
    status, out, _ = run_main(["--experiment", "e", "--aggregate-only"], tmp_path, capsys)
    assert status == 0 and "collected 2 runs" in out
    assert "wrote TensorBoard HParams summaries of 2 finished runs" in out
    assert os.path.exists(results / "runs" / "digits" / "gradattn_rope" / "seed42-jax" / "metrics.json")
    with open(results / "paired.csv") as file:
        (row,) = list(csv.DictReader(file))
    assert float(row["mean_difference_pp"]) == pytest.approx(5.0)
    # Docs from the committed files alone: the runs folder is not needed.
    os.remove(tmp_path / "results.md")
    status, out, _ = run_main(["--docs-only"], tmp_path, capsys)
    assert status == 0
    assert "+5.00 pp" in (tmp_path / "results.md").read_text()


def test_a_tiny_real_grid_end_to_end(tmp_path):
    """Two models x two seeds, one epoch on 64 digits, on this backend, through the script."""
    command = [
        sys.executable, os.path.join(REPOSITORY, "scripts", "reproduce.py"), "--experiment", "tiny",
        "--datasets", "digits", "--models", "resnet18,gradattn_learned_pe", "--seeds", "1,2",
        "--backends", BACKEND, "--epochs", "1", "--max-train-samples", "64", "--batch-size", "32",
        "--probe-batches", "1", *TINY_MODEL_ARGS, "--runs-dir", str(tmp_path / "runs"),
        "--results-root", str(tmp_path / "results"), "--docs", str(tmp_path / "results.md"),
    ]  # fmt: skip
    environment = isolated_environment(tmp_path)
    environment["KERAS_BACKEND"] = BACKEND
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900,
                            cwd=str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + "\n".join(program_lines(result.stderr))[-3000:]
    assert "run 4/4: digits gradattn_learned_pe seed 2" in result.stdout
    results = tmp_path / "results" / "tiny"
    for seed in (1, 2):
        for model in ("resnet18", "gradattn_learned_pe"):
            run = results / "runs" / "digits" / model / f"seed{seed}-{BACKEND}"
            assert {"config.json", "history.csv", "metrics.json", "status.json"} <= set(os.listdir(run))
            assert "best.keras" not in os.listdir(run)
            assert os.path.exists(tmp_path / "runs" / "digits" / model / f"seed{seed}-{BACKEND}" / "best.keras")
            hparams_dir = tmp_path / "runs" / "digits" / model / f"seed{seed}-{BACKEND}" / "hparams"
            assert os.listdir(hparams_dir) == [tensorboard_hparams.RUN_FILE_NAME]
    assert os.path.exists(tmp_path / "runs" / tensorboard_hparams.EXPERIMENT_FILE_NAME)
    with open(results / "summary.csv") as file:
        summary = {row["model"]: row for row in csv.DictReader(file)}
    assert summary["resnet18"]["n"] == "2" and summary["resnet18"]["max_epochs"] == "1"
    assert summary["gradattn_learned_pe"]["train_size"] == "64"
    assert 0 <= float(summary["gradattn_learned_pe"]["top1_pct_mean"]) <= 100
    assert summary["gradattn_learned_pe"]["health_score_mean"] != ""
    assert "token_dim" in summary["gradattn_learned_pe"]["model_args"]
    assert "token_dim" not in summary["resnet18"]["model_args"]
    with open(results / "paired.csv") as file:
        (paired,) = list(csv.DictReader(file))
    assert paired["n"] == "2" and float(paired["smallest_possible_p"]) == 0.5
    readme = (results / "README.md").read_text()
    assert "at most 1 epoch (" in readme and "--max-train-samples 64" in readme
    assert "## Where this confirms or contradicts the paper" in (tmp_path / "results.md").read_text()
