"""TensorBoard HParams summaries of a grid's finished runs.

`tensorboard --logdir <runs dir>` then lists every finished run in the HParams
tab, one row per run: its dataset, model, seed, backend and model arguments,
and its test top-1, ECE and gradient-flow health score, to sort, filter and
plot against each other (parallel coordinates, scatter plots).

    <runs dir>/events.out.tfevents.gradattn-hparams-experiment
        the experiment: which hyperparameters (with the values the runs
        took) and which metrics the tab shows
    <runs dir>/<dataset>/<model>/seed<k>-<backend>/hparams/events.out.tfevents.gradattn-hparams
        the run: its hyperparameters, and its metrics as scalars

A run's metrics live in the `hparams/` folder beside its hyperparameters,
not in the run directory itself: TensorBoard counts every scalar below a
run's hyperparameters as one of its metrics, and the gradient logs hold
hundreds. Each file is written whole and renamed into place, and rewritten
with the same name on the next call, so that calling again after more runs
finished updates rather than duplicates. Needs the `tensorboard` package
(its protos only: neither TensorFlow nor a Keras backend is imported).
"""

import json
import os

from keras_gradattn.experiments import aggregate
from keras_gradattn.utils import atomic_write_bytes

HPARAMS_FOLDER = "hparams"
RUN_FILE_NAME = "events.out.tfevents.gradattn-hparams"
EXPERIMENT_FILE_NAME = "events.out.tfevents.gradattn-hparams-experiment"
HPARAMS = ("dataset", "model", "seed", "backend", "model_args")
# (tag, record field, display name, description)
METRICS = (
    ("test/top1_pct", "top1_pct", "test top-1 (%)", "accuracy on the test split, in percent"),
    ("test/ece", "ece", "test ECE", "expected calibration error on the test split (10 confidence bins)"),
    (
        "gradient_flow/health_score",
        "health_score",
        "health score",
        "the gradient-flow probe's health score (docs/gradient_flow.md)",
    ),
)


def model_args_text(record):
    """A run's model arguments as one value: `key=value` pairs, or `none`."""
    model_args = json.loads(record.get("model_args") or "{}")
    return " ".join(f"{key}={value}" for key, value in sorted(model_args.items())) or "none"


def run_hparams(record):
    """{hyperparameter: value} of a run record (`aggregate.read_run_record`)."""
    return {
        "dataset": record["dataset"],
        "model": record["model"],
        "seed": int(record["seed"]),
        "backend": record["backend"],
        "model_args": model_args_text(record),
    }


def write_run_hparams(run_dir, runs_dir):
    """Writes the HParams summary of the finished run in `run_dir` (a folder below
    `runs_dir`, whose relative path names it); returns its record, or None
    (nothing written) when the run is not finished."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import summary_v2

    from keras_gradattn.callbacks.summary_writer import event_file_bytes

    record = aggregate.read_run_record(run_dir)
    if record["status"] != "finished":
        return None
    trial_id = os.path.relpath(run_dir, runs_dir).replace(os.sep, "/")
    summaries = [(0, summary_v2.hparams_pb(run_hparams(record), trial_id=trial_id))]
    for tag, field, _, _ in METRICS:
        if record.get(field) is not None:
            value = summary_pb2.Summary.Value(tag=tag, simple_value=float(record[field]))
            summaries.append((0, summary_pb2.Summary(value=[value])))
    atomic_write_bytes(os.path.join(run_dir, HPARAMS_FOLDER, RUN_FILE_NAME), event_file_bytes(summaries))
    return record


def write_experiment_hparams(runs_dir, records):
    """Writes the experiment's HParams configuration at the top of `runs_dir`:
    the hyperparameters, each with the values `records` took, and the metrics."""
    from tensorboard.plugins.hparams import summary_v2

    from keras_gradattn.callbacks.summary_writer import event_file_bytes

    values = {name: sorted({run_hparams(record)[name] for record in records}) for name in HPARAMS}
    hparams = [summary_v2.HParam(name, summary_v2.Discrete(values[name])) for name in HPARAMS]
    metrics = [
        summary_v2.Metric(tag, display_name=display_name, description=description)
        for tag, _, display_name, description in METRICS
    ]
    summary = summary_v2.hparams_config_pb(hparams, metrics)
    atomic_write_bytes(os.path.join(runs_dir, EXPERIMENT_FILE_NAME), event_file_bytes([(0, summary)]))


def write_hparams(runs_dir):
    """Writes the HParams summaries of every finished run below `runs_dir`
    (any depth), and the experiment's configuration; returns how many runs."""
    records = []
    for folder, _, files in sorted(os.walk(runs_dir)):
        if "config.json" in files:
            record = write_run_hparams(folder, runs_dir)
            if record is not None:
                records.append(record)
    if records:
        write_experiment_hparams(runs_dir, records)
    return len(records)
