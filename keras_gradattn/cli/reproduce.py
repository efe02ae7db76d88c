"""`gradattn-reproduce`: the paper's comparison as a grid of runs, and its tables.

    python scripts/reproduce.py --experiment digits_full --datasets digits \\
        --models resnet18,gradattn_nope,gradattn_learned_pe,gradattn_rope --seeds 42,43,44
    python scripts/reproduce.py --experiment digits_full ... --dry-run     # the plan only
    python scripts/reproduce.py --experiment digits_full --aggregate-only  # tables only
    python scripts/reproduce.py --docs-only                                # docs/results.md only

Every cell (dataset x model x seed x backend) is one `gradattn-train` run in
its own subprocess, in `<runs-dir>/<dataset>/<model>/seed<k>-<backend>`;
finished runs are skipped, unfinished ones resumed, failures reported
without stopping the grid. Then each run's small files are copied to
`results/<experiment>/runs/` and the tables written there (runs.csv,
summary.csv, paired.csv, cross_backend.csv, README.md), and docs/results.md
is regenerated from every experiment's committed CSVs. TensorBoard HParams
summaries of the finished runs go into the runs folder, for
`tensorboard --logdir <runs-dir>` (keras_gradattn.experiments.tensorboard_hparams).

Exit status: 0 done; 1 some runs failed (the others' results are written);
2 bad input (one line on stderr, nothing run or written); 130 interrupted.
See docs/reproduce.md.
"""

import argparse
import os
import re
import shlex
import sys

from keras_gradattn.backend import BACKENDS
from keras_gradattn.cli.arguments import BadInput as _BadInput
from keras_gradattn.cli.arguments import HelpFormatter
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import fail
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.arguments import key_value_text
from keras_gradattn.cli.arguments import names as name_list
from keras_gradattn.cli.arguments import non_negative_int
from keras_gradattn.cli.arguments import positive_int
from keras_gradattn.cli.arguments import program_name
from keras_gradattn.cli.keras_backend import choose_keras_backend

DEFAULT_MODELS = ("resnet18", "gradattn_nope", "gradattn_learned_pe", "gradattn_rope")
DEFAULT_SEEDS = (42, 43, 44)
DEFAULT_DATASETS = ("digits",)
EXIT_OK, EXIT_RUNS_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
PROG = "reproduce.py"
# Flags that only mean something when a grid is run (or planned).
GRID_FLAGS = (
    "datasets", "models", "seeds", "backends", "epochs", "max_train_samples", "batch_size",
    "probe_batches", "data_dir", "model_arg", "dataset_arg", "run_timeout", "title", "description",
    "jobs", "devices", "ray", "cpus_per_run", "gpus_per_run",
)  # fmt: skip
_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _seeds(text):
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of positive integers, got {text!r}"
        )
    return seeds


def build_parser():
    parser = OneLineErrorParser(
        prog=PROG,
        description=(
            "Run a grid of gradattn-train runs (datasets x models x seeds x backends) with the "
            "paper's protocol, one subprocess each, and tabulate them: mean +- std per model, "
            "paired differences against the baseline with an exact sign-flip test, the paper's "
            "figures beside ours."
        ),
        formatter_class=HelpFormatter,
    )
    add = parser.add_argument
    add("--experiment", help="experiment name: results go to <results-root>/<experiment>/")
    add("--datasets", type=name_list, default=None,
        help=f"comma-separated dataset names (default: {','.join(DEFAULT_DATASETS)})")
    add("--models", type=name_list, default=None,
        help=f"comma-separated model names (default: {','.join(DEFAULT_MODELS)})")
    add("--seeds", type=_seeds, default=None,
        help=f"comma-separated positive seeds (default: {','.join(map(str, DEFAULT_SEEDS))})")
    add("--backends", type=name_list, default=None,
        help="comma-separated Keras backends (default: $KERAS_BACKEND, else jax)")
    add("--epochs", type=positive_int, default=None,
        help="maximum epochs per run (default: gradattn-train's, the paper's 100)")
    add("--max-train-samples", type=positive_int, default=None,
        help="train on a seeded subset of N images (validation and test stay whole)")
    add("--batch-size", type=positive_int, default=None, help="default: the paper's (128)")
    add("--probe-batches", type=non_negative_int, default=None,
        help="gradient-flow probe batches after training (default: gradattn-train's, 20)")
    add("--data-dir", default=None, help="passed to gradattn-train")
    add("--model-arg", action="append", type=key_value_text, default=None, metavar="KEY=VALUE",
        help="create_model override, repeatable; applied to every model of the grid that accepts "
        "KEY (encoder sizes: GradAttn models only); a KEY no model accepts is an error")
    add("--dataset-arg", action="append", type=key_value_text, default=None, metavar="KEY=VALUE",
        help="dataset option for gradattn-train (synthetic only), repeatable")
    add("--baseline", default="resnet18", help="the model every other model is paired against")
    add("--runs-dir", default=None, help="run directories (default: runs/reproduce/<experiment>)")
    add("--results-root", default="results", help="folder of the experiments' results")
    add("--docs", default=os.path.join("docs", "results.md"),
        help="markdown regenerated from every experiment under --results-root; 'off' to skip")
    add("--run-timeout", type=positive_int, default=None,
        help="seconds allowed per run; a run past it is stopped and stays resumable")
    add("--jobs", type=positive_int, default=None,
        help="runs at once on this machine (default 1; with --devices, one per GPU); each gets its "
        "share of the GPUs and of the CPU cores")
    add("--devices", type=name_list, default=None, metavar="IDS",
        help="comma-separated GPU ids to share out over the --jobs (CUDA_VISIBLE_DEVICES per run)")
    add("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="run each cell as a Ray task: 'local' (the default when ADDRESS is left out) starts "
        "Ray on this machine; 'auto' or ray://HOST:PORT joins a cluster (needs: pip install ray)")
    add("--cpus-per-run", type=positive_int, default=None, help="with --ray: CPUs each run asks for (default 1)")
    add("--gpus-per-run", type=non_negative_int, default=None, help="with --ray: GPUs each run asks for (default 0)")
    add("--title", default=None, help="heading of the experiment's README (kept in experiment.json)")
    add("--description", default=None,
        help="a paragraph for the experiment's README: why this budget (kept in experiment.json)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="print the plan (each run's state and command) and exit")
    mode.add_argument("--aggregate-only", action="store_true",
                      help="collect finished runs and rewrite the experiment's tables; train nothing")
    mode.add_argument("--docs-only", action="store_true",
                      help="rewrite --docs from the committed results of every experiment; nothing else")
    return parser


def _fail(message, code=EXIT_BAD_INPUT, prog=PROG):
    return fail(prog, message, code)


def _check_mode(args):
    """One-line problems with the combination of flags, or None."""
    if args.docs_only:
        given = [name for name in ("experiment", *GRID_FLAGS) if getattr(args, name) is not None]
        if given:
            return f"--docs-only takes no grid flags; received --{given[0].replace('_', '-')}"
        if args.docs == "off":
            return "--docs-only with --docs off has nothing to do"
        return None
    if not args.experiment:
        return "--experiment NAME is required (except with --docs-only)"
    if not _EXPERIMENT_NAME.match(args.experiment):
        return f"--experiment must be letters, digits, '_', '.' or '-'; received {args.experiment!r}"
    if args.aggregate_only:
        given = [name for name in GRID_FLAGS if getattr(args, name) is not None]
        if given:
            return (
                f"--aggregate-only reads what the runs recorded and takes no grid flags; received "
                f"--{given[0].replace('_', '-')}"
            )
    return None


def _collected_as_finished(results_dir, run):
    """Whether the results folder holds this run, finished: committed results
    count as done where the run directory itself is gone (another machine, a
    fresh checkout)."""
    from keras_gradattn.experiments import experiment as experiment_lib
    from keras_gradattn.experiments import grid as grid_lib

    status = grid_lib.read_status(experiment_lib.collected_dir(results_dir, run))
    return bool(status) and status.get("status") == grid_lib.FINISHED


def _build_executor(args):
    """The executor the flags ask for; raises _BadInput on a bad combination."""
    from keras_gradattn.experiments import executors

    try:
        if args.ray is not None:
            if args.jobs is not None or args.devices is not None:
                given = "--jobs" if args.jobs is not None else "--devices"
                raise _BadInput(f"{given} is for this machine; with --ray each run asks Ray for "
                                "--cpus-per-run and --gpus-per-run instead")
            return executors.RayExecutor(
                args.ray, cpus_per_run=args.cpus_per_run or 1, gpus_per_run=args.gpus_per_run or 0
            )
        for name in ("cpus_per_run", "gpus_per_run"):
            if getattr(args, name) is not None:
                raise _BadInput(f"--{name.replace('_', '-')} needs --ray (on this machine use --jobs and --devices)")
        jobs = args.jobs or (len(args.devices) if args.devices else 1)
        return executors.LocalExecutor(jobs=jobs, devices=args.devices)
    except executors.ExecutorSetupError as error:
        raise _BadInput(str(error)) from None


def _resolve_grid(args):
    """Fills defaults and validates names; returns (grid dict, model_args_for) or raises _BadInput."""
    from keras_gradattn.data import list_datasets
    from keras_gradattn.models import list_models
    from keras_gradattn.models.registry import get_model_entry

    datasets = args.datasets or list(DEFAULT_DATASETS)
    models = args.models or list(DEFAULT_MODELS)
    seeds = args.seeds or list(DEFAULT_SEEDS)
    default_backend = os.environ.get("KERAS_BACKEND") if os.environ.get("KERAS_BACKEND") in BACKENDS else "jax"
    backends = args.backends or [default_backend]
    for kind, names, known in (
        ("dataset", datasets, list_datasets()),
        ("model", models, list_models()),
        ("backend", backends, BACKENDS),
    ):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise _BadInput(f"unknown {kind} {unknown[0]!r}; allowed: {', '.join(known)}")
    for kind, names in (("dataset", datasets), ("model", models), ("seed", seeds), ("backend", backends)):
        if len(set(names)) != len(names):
            raise _BadInput(f"--{kind}s lists a {kind} twice: {','.join(map(str, names))}")
    if args.baseline not in list_models():
        raise _BadInput(f"unknown --baseline {args.baseline!r}; allowed: {', '.join(list_models())}")

    model_args = args.model_arg or []
    accepted = {model: set(get_model_entry(model).allowed_overrides) - {"dtype"} for model in models}
    for text in model_args:
        key = text.partition("=")[0].strip()
        if not any(key in keys for keys in accepted.values()):
            allowed = sorted(set().union(*accepted.values()))
            raise _BadInput(
                f"--model-arg {key!r} is accepted by none of the models {','.join(models)}; "
                f"allowed: {', '.join(allowed)}"
            )

    def model_args_for(model):
        return tuple(text for text in model_args if text.partition("=")[0].strip() in accepted[model])

    grid = {"datasets": datasets, "models": models, "seeds": seeds, "backends": backends}
    return grid, model_args_for


def main(argv=None):
    """Runs `gradattn-reproduce` with `argv` (default: the command line); returns the exit status."""
    prog = program_name(PROG, argv)
    argv = sys.argv[1:] if argv is None else [str(argument) for argument in argv]
    # This process only plans and tabulates (each run chooses its own
    # backend), but the model registry it checks names against loads Keras.
    choose_keras_backend()
    parser = build_parser()
    parser.prog = prog
    args, status = parse_command_line(parser, argv)
    if args is None:
        return status
    problem = _check_mode(args)
    if problem:
        return _fail(problem, prog=prog)

    from keras_gradattn.experiments import experiment as experiment_lib
    from keras_gradattn.experiments import grid as grid_lib

    command = shlex.join(["python", "scripts/reproduce.py", *argv])
    docs_path = None if args.docs == "off" else args.docs
    if args.docs_only:
        experiment_lib.write_results_document(args.results_root, docs_path, command)
        print(f"wrote {docs_path}")
        return EXIT_OK

    results_dir = os.path.join(args.results_root, args.experiment)
    runs_dir = args.runs_dir or os.path.join("runs", "reproduce", args.experiment)
    if args.aggregate_only:
        if experiment_lib.load_meta(results_dir) is None:
            return _fail(f"no experiment {args.experiment!r} under {args.results_root!r} (no experiment.json)", prog=prog)
        collected = experiment_lib.collect_all(runs_dir, results_dir)
        _write_tensorboard_hparams(runs_dir)
        return _write_outputs(args, results_dir, docs_path, f"collected {collected} runs from {runs_dir}")

    try:
        grid, model_args_for = _resolve_grid(args)
        executor = _build_executor(args)
    except _BadInput as error:
        return _fail(str(error), prog=prog)
    budget = grid_lib.Budget(
        epochs=args.epochs, max_train_samples=args.max_train_samples, batch_size=args.batch_size,
        probe_batches=args.probe_batches, data_dir=args.data_dir, dataset_args=tuple(args.dataset_arg or ()),
    )  # fmt: skip
    plan = grid_lib.build_plan(
        grid["datasets"], grid["models"], grid["seeds"], grid["backends"], model_args_for=model_args_for
    )
    if args.dry_run:
        return _print_plan(plan, runs_dir, budget)

    budget_record = {**budget.to_record(), "model_args": list(args.model_arg or [])}
    budget_record.pop("data_dir")  # where the files are is not part of the budget
    try:
        experiment_lib.record_invocation(
            results_dir, args.experiment, grid, budget_record, command,
            title=args.title, description=args.description,
        )  # fmt: skip
    except experiment_lib.ExperimentError as error:
        return _fail(str(error), prog=prog)

    def collect(run, run_dir):
        grid_lib.collect_run(run_dir, experiment_lib.collected_dir(results_dir, run))
        if hparams_lib is not None:
            # Now, so that the HParams tab fills while the grid runs.
            hparams_lib.write_run_hparams(run_dir, runs_dir)

    hparams_lib = _tensorboard_hparams_module()

    print(f"{len(plan)} runs in {runs_dir}; results in {results_dir}", flush=True)
    try:
        outcome = grid_lib.run_grid(
            plan, runs_dir, budget, on_finished=collect, run_timeout=args.run_timeout,
            report=lambda line: print(line, flush=True), executor=executor,
            finished_elsewhere=lambda run: _collected_as_finished(results_dir, run),
        )  # fmt: skip
    except KeyboardInterrupt:
        return _fail("interrupted; rerun the same command to resume", EXIT_INTERRUPTED, prog=prog)
    _write_tensorboard_hparams(runs_dir)
    status = _write_outputs(args, results_dir, docs_path, None)
    if status != EXIT_OK:
        return status
    return EXIT_RUNS_FAILED if outcome.failed else EXIT_OK


def _tensorboard_hparams_module():
    """keras_gradattn.experiments.tensorboard_hparams, or None without the tensorboard package."""
    try:
        import tensorboard.plugins.hparams.summary_v2  # noqa: F401
    except ImportError:
        return None
    from keras_gradattn.experiments import tensorboard_hparams

    return tensorboard_hparams


def _write_tensorboard_hparams(runs_dir):
    hparams_lib = _tensorboard_hparams_module()
    if hparams_lib is None:
        print("TensorBoard HParams summaries not written: the tensorboard package is not installed")
        return
    count = hparams_lib.write_hparams(runs_dir)
    if count:
        print(f"wrote TensorBoard HParams summaries of {count} finished runs: tensorboard --logdir {runs_dir}")


def _write_outputs(args, results_dir, docs_path, note):
    from keras_gradattn.experiments import experiment as experiment_lib

    summary_rows, paired_rows, cross_rows = experiment_lib.write_tables(results_dir, baseline=args.baseline)
    if note:
        print(note)
    print(
        f"wrote {results_dir}: {len(summary_rows)} summary rows, {len(paired_rows)} paired comparisons, "
        f"{len(cross_rows)} cross-backend rows"
    )
    if docs_path:
        experiment_lib.write_results_document(
            args.results_root, docs_path, f"python scripts/reproduce.py --docs-only --results-root {args.results_root}"
        )
        print(f"wrote {docs_path}")
    return EXIT_OK


def _print_plan(plan, runs_dir, budget):
    from keras_gradattn.experiments import grid as grid_lib

    counts = {}
    for index, run in enumerate(plan, start=1):
        run_dir = os.path.join(runs_dir, run.relative_dir)
        state = grid_lib.run_state(run_dir)
        counts[state] = counts.get(state, 0) + 1
        action = {
            grid_lib.NEW: "start", grid_lib.RESUME: "resume", grid_lib.FINISHED: "skip (finished)",
            grid_lib.DIVERGED: "skip (diverged)",
        }[state]  # fmt: skip
        print(f"run {index}/{len(plan)}: {run.label}: {action}")
        if state in (grid_lib.NEW, grid_lib.RESUME):
            print(f"    KERAS_BACKEND={run.backend} {shlex.join(grid_lib.train_command(run, run_dir, budget, python='python'))}")
    summary = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    print(f"dry run: {len(plan)} runs ({summary}); nothing was started")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
