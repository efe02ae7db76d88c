"""The grid runner with a fake runner: plan order, skipping, resuming, failures, progress."""

import json
import os

import pytest

from keras_gradattn.experiments import grid
from reproduce_testing import fake_run
from reproduce_testing import write_json
from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent


class FakeRunner:
    """Stands in for a gradattn-train subprocess: records the command and
    leaves the run directory in the state its script says."""

    def __init__(self, outcomes=None):
        self.commands = []
        # (model, seed) -> "finish" | "crash" | "timeout" | "diverge" | "raise" | "exit 0 unfinished"
        self.outcomes = outcomes or {}

    def __call__(self, command, log_path, environment, timeout):
        self.commands.append((command, environment["KERAS_BACKEND"], timeout))
        run_dir = command[command.index("--output-dir") + 1]
        model = command[command.index("--model") + 1]
        seed = int(command[command.index("--seed") + 1])
        outcome = self.outcomes.get((model, seed), "finish")
        if outcome == "raise":
            raise OSError(28, "No space left on device")
        with open(log_path, "a") as log:
            log.write(f"training {model}\nlast words of {model}\n")
        if outcome == "exit 0 unfinished":
            fake_run(run_dir, model=model, seed=seed, status="running")
            return 0
        if outcome == "timeout":
            write_json(os.path.join(run_dir, "config.json"), {})
            return None
        if outcome == "crash":
            write_json(os.path.join(run_dir, "config.json"), {})
            write_json(os.path.join(run_dir, "status.json"), {"status": "running"})
            return 1
        if outcome == "diverge":
            fake_run(run_dir, model=model, seed=seed, status="diverged")
            return 3
        fake_run(run_dir, model=model, seed=seed)
        return 0


def ticking_clock(step=10.0):
    now = [0.0]

    def clock():
        now[0] += step
        return now[0]

    return clock


def test_plan_varies_seeds_slower_than_models():
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42, 43], ["jax", "torch"])
    assert [(run.seed, run.model, run.backend) for run in plan] == [
        (42, "resnet18", "jax"), (42, "resnet18", "torch"),
        (42, "gradattn_rope", "jax"), (42, "gradattn_rope", "torch"),
        (43, "resnet18", "jax"), (43, "resnet18", "torch"),
        (43, "gradattn_rope", "jax"), (43, "gradattn_rope", "torch"),
    ]  # fmt: skip
    assert plan[0].relative_dir == os.path.join("digits", "resnet18", "seed42-jax")


def test_train_command_carries_the_budget_and_the_model_args():
    run = grid.GridRun("digits", "gradattn_rope", 43, "torch", ("token_dim=16",))
    budget = grid.Budget(epochs=3, max_train_samples=100, batch_size=32, probe_batches=0,
                         dataset_args=("num_examples=50",))
    command = grid.train_command(run, "out/dir", budget, python="py")
    assert command[:3] == ["py", "-m", "keras_gradattn.cli.train"]
    text = " ".join(command)
    for fragment in ("--dataset digits", "--model gradattn_rope", "--seed 43", "--backend torch",
                     "--output-dir out/dir", "--resume", "--epochs 3", "--max-train-samples 100",
                     "--batch-size 32", "--probe-batches 0", "--model-arg token_dim=16",
                     "--dataset-arg num_examples=50"):
        assert fragment in text
    # Unset budget fields keep gradattn-train's defaults: no flag at all.
    assert "--epochs" not in grid.train_command(run, "d", grid.Budget())


def test_run_state(tmp_path):
    assert grid.run_state(tmp_path / "absent") == grid.NEW
    fake_run(tmp_path / "done")
    assert grid.run_state(tmp_path / "done") == grid.FINISHED
    fake_run(tmp_path / "nan", status="diverged")
    assert grid.run_state(tmp_path / "nan") == grid.DIVERGED
    fake_run(tmp_path / "half", status="running")
    assert grid.run_state(tmp_path / "half") == grid.RESUME
    # A config without a readable status (killed before writing it) is resumed.
    write_json(tmp_path / "early" / "config.json", {})
    (tmp_path / "early" / "status.json").write_text("{trunc")
    assert grid.run_state(tmp_path / "early") == grid.RESUME


def test_grid_runs_skips_resumes_and_collects(tmp_path):
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42, 43], ["jax"])
    runs = tmp_path / "runs"
    fake_run(runs / plan[0].relative_dir)  # finished before
    fake_run(runs / plan[1].relative_dir, model="gradattn_rope", status="running")  # interrupted
    runner, lines, collected = FakeRunner(), [], []
    outcome = grid.run_grid(
        plan, str(runs), grid.Budget(epochs=2), runner=runner, report=lines.append,
        on_finished=lambda run, run_dir: collected.append(run), clock=ticking_clock(), run_timeout=99,
    )  # fmt: skip
    assert outcome.skipped == [plan[0]]
    assert outcome.ran == plan[1:]
    assert not outcome.failed
    assert collected == plan
    assert len(runner.commands) == 3
    assert all("--resume" in command and backend == "jax" and timeout == 99
               for command, backend, timeout in runner.commands)  # fmt: skip
    assert lines[0] == "run 1/4: digits resnet18 seed 42 (jax): finished already, skipped"
    assert lines[1].startswith("run 2/4: digits gradattn_rope seed 42 (jax): resuming | elapsed ")
    assert "ETA unknown" in lines[1]
    assert lines[3].startswith("run 3/4: digits resnet18 seed 43 (jax): starting")
    # One run took 10 s (two clock ticks apart), two remain: ETA 20 s.
    assert "ETA 0:00:20" in lines[3]
    assert lines[-1].startswith("grid done in ") and "3 run, 1 already finished, 0 failed" in lines[-1]


def test_failures_are_reported_and_the_grid_goes_on(tmp_path):
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_nope", "gradattn_rope"], [42], ["jax"])
    runner = FakeRunner({("resnet18", 42): "crash", ("gradattn_nope", 42): "timeout"})
    lines = []
    outcome = grid.run_grid(plan, str(tmp_path), grid.Budget(), runner=runner, report=lines.append,
                            run_timeout=60)
    assert [failure.run.model for failure in outcome.failed] == ["resnet18", "gradattn_nope"]
    assert outcome.ran == [plan[2]]
    crash, timeout = outcome.failed
    assert crash.reason == "exit 1: last words of resnet18"
    assert os.path.exists(crash.log_path)
    assert timeout.reason == "timed out after 0:01:00 (resumable)"
    assert any("FAILED" in line and "resnet18" in line for line in lines)
    assert "1 run, 0 already finished, 2 failed" in lines[-3]
    # A second pass resumes both failed runs and skips the finished one.
    again = FakeRunner()
    outcome = grid.run_grid(plan, str(tmp_path), grid.Budget(), runner=again, report=lambda line: None)
    assert len(again.commands) == 2 and len(outcome.skipped) == 1 and not outcome.failed


def test_a_runner_that_raises_fails_its_cell_only(tmp_path):
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42, 43], ["jax"])
    runner = FakeRunner({("resnet18", 42): "raise"})
    lines = []
    outcome = grid.run_grid(plan, str(tmp_path), grid.Budget(), runner=runner, report=lines.append)
    assert outcome.ran == plan[1:]
    [failure] = outcome.failed
    assert failure.run == plan[0]
    assert failure.reason == "could not be run: OSError: [Errno 28] No space left on device"
    assert any("FAILED" in line and "No space left" in line for line in lines)


def test_a_missing_interpreter_fails_every_cell_without_stopping_the_grid(tmp_path):
    """The real runner: Popen itself raises (FileNotFoundError) for each cell."""
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42], ["jax"])
    missing = str(tmp_path / "no-python-here")
    outcome = grid.run_grid(plan, str(tmp_path / "runs"), grid.Budget(), report=lambda line: None, python=missing)
    assert [failure.run for failure in outcome.failed] == plan
    for failure in outcome.failed:
        assert failure.reason.startswith("could not be run: FileNotFoundError: ") and missing in failure.reason
        with open(failure.log_path) as log:
            assert missing in log.read()  # the command it tried


def test_exit_0_without_a_finished_status_is_a_failure(tmp_path):
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42], ["jax"])
    runner = FakeRunner({("resnet18", 42): "exit 0 unfinished"})
    outcome = grid.run_grid(plan, str(tmp_path), grid.Budget(), runner=runner, report=lambda line: None)
    assert outcome.ran == [plan[1]]
    assert [(failure.run, failure.reason) for failure in outcome.failed] == [
        (plan[0], "exit 0 but status.json says 'running'")
    ]
    # Nothing at all in the run directory: still not finished.
    outcome = grid.run_grid(plan, str(tmp_path / "other"), grid.Budget(), runner=lambda *args: 0,
                            report=lambda line: None)  # fmt: skip
    assert not outcome.ran
    assert {failure.reason for failure in outcome.failed} == {"exit 0 but no status.json"}


def test_an_on_finished_error_fails_its_cell_only(tmp_path):
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42], ["jax"])
    collected = []

    def collect(run, run_dir):
        if run.model == "resnet18":
            raise PermissionError(13, "Permission denied")
        collected.append(run)

    outcome = grid.run_grid(plan, str(tmp_path), grid.Budget(), runner=FakeRunner(), on_finished=collect,
                            report=lambda line: None)  # fmt: skip
    assert collected == [plan[1]]
    assert [failure.reason for failure in outcome.failed] == [
        "on_finished failed: PermissionError: [Errno 13] Permission denied"
    ]


def test_a_diverged_run_is_reported_not_retried(tmp_path):
    plan = grid.build_plan(["digits"], ["gradattn_rope"], [42], ["jax"])
    runner = FakeRunner({("gradattn_rope", 42): "diverge"})
    outcome = grid.run_grid(plan, str(tmp_path), grid.Budget(), runner=runner, report=lambda line: None)
    assert outcome.failed[0].reason.startswith("exit 3")
    collected = []
    outcome = grid.run_grid(plan, str(tmp_path), grid.Budget(), runner=runner, report=lambda line: None,
                            on_finished=lambda run, run_dir: collected.append(run))
    assert len(runner.commands) == 1  # not started again
    assert "diverged in an earlier attempt" in outcome.failed[0].reason
    assert collected == plan  # its status and config are kept with the results


def test_collect_run_copies_only_the_small_files(tmp_path):
    source = tmp_path / "run"
    fake_run(source)
    (source / "best.keras").write_bytes(b"weights")
    (source / "history.csv").write_text("epoch,accuracy\n1,0.5\n")
    os.makedirs(source / "logs")
    copied = grid.collect_run(str(source), str(tmp_path / "kept"))
    assert sorted(copied) == ["config.json", "history.csv", "metrics.json", "status.json"]
    assert sorted(os.listdir(tmp_path / "kept")) == sorted(copied)
    with open(tmp_path / "kept" / "metrics.json") as file:
        assert json.load(file)["top1_accuracy"] == 0.9


def test_training_environment_sets_the_backend_and_the_path():
    environment = grid.training_environment("torch")
    assert environment["KERAS_BACKEND"] == "torch"
    assert environment["PYTHONPATH"].split(os.pathsep)[0] == REPOSITORY


@pytest.mark.parametrize("seconds, text", [(None, "unknown"), (5, "0:00:05"), (3725.4, "1:02:05")])
def test_format_duration(seconds, text):
    assert grid.format_duration(seconds) == text


def test_a_cell_whose_results_are_kept_elsewhere_is_not_run_again(tmp_path):
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42], ["jax"])
    runner, lines = FakeRunner(), []
    outcome = grid.run_grid(
        plan, str(tmp_path), grid.Budget(), runner=runner, report=lines.append,
        finished_elsewhere=lambda run: run.model == "resnet18",
    )  # fmt: skip
    assert outcome.skipped == [plan[0]] and outcome.ran == [plan[1]]
    assert [command[command.index("--model") + 1] for command, _, _ in runner.commands] == ["gradattn_rope"]
    assert lines[0] == "run 1/2: digits resnet18 seed 42 (jax): finished already (its results are collected), skipped"
