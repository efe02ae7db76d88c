"""An experiment's results folder: metadata, collected runs, tables.

    results/<experiment>/
      experiment.json     the grid, the budget, the machine, every invocation
      runs/<dataset>/<model>/seed<k>-<backend>/   each run's small files
      runs.csv summary.csv paired.csv cross_backend.csv README.md
      validation_accuracy.png gradient_flow.png   figures over seeds
"""

import datetime
import json
import os

from keras_gradattn.experiments import aggregate
from keras_gradattn.experiments import figures
from keras_gradattn.experiments import grid
from keras_gradattn.experiments import results_markdown
from keras_gradattn.utils import atomic_write_json
from keras_gradattn.utils import atomic_write_text
from keras_gradattn.utils import describe_machine

RUNS_FOLDER = "runs"


class ExperimentError(ValueError):
    """An experiment that cannot be run or aggregated as asked (one-line message)."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def meta_path(results_dir):
    return os.path.join(results_dir, results_markdown.EXPERIMENT_FILE)


def load_meta(results_dir):
    path = meta_path(results_dir)
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)


def record_invocation(results_dir, name, grid_record, budget_record, command, title=None, description=None):
    """Creates or updates experiment.json with this invocation of the grid.

    The grid may grow between invocations (more seeds, models, backends); the
    budget may not, since runs with different budgets are different
    experiments (and their run directories could not be resumed).
    """
    # Compare in JSON terms: tuples come back from the file as lists.
    budget = json.loads(json.dumps(budget_record))
    meta = load_meta(results_dir)
    if meta is None:
        meta = {"name": name, "created": _now(), "grid": {}, "budget": budget, "invocations": []}
    elif meta.get("budget") != budget:
        raise ExperimentError(
            f"experiment {name!r} was run with budget {json.dumps(meta.get('budget'), sort_keys=True)}; "
            f"received {json.dumps(budget, sort_keys=True)}; use another --experiment"
        )
    for key, values in grid_record.items():
        merged = list(meta["grid"].get(key, []))
        merged += [value for value in values if value not in merged]
        meta["grid"][key] = merged
    if title:
        meta["title"] = title
    if description:
        meta["description"] = description
    meta["machine"] = describe_machine()
    # Each invocation's own grid, so that the cells it asked for and that have
    # not finished can be listed (the merged grid above may be wider).
    invocation_grid = {key: list(values) for key, values in grid_record.items()}
    meta["invocations"].append({"command": command, "started": _now(), "grid": invocation_grid})
    atomic_write_json(meta_path(results_dir), meta)
    return meta


def collected_dir(results_dir, run):
    return os.path.join(results_dir, RUNS_FOLDER, run.relative_dir)


def collect_all(runs_dir, results_dir):
    """Copies every finished or diverged run below `runs_dir` into the results folder."""
    collected = 0
    if not os.path.isdir(runs_dir):
        return collected
    for folder, _, files in sorted(os.walk(runs_dir)):
        if "status.json" not in files or grid.run_state(folder) not in (grid.FINISHED, grid.DIVERGED):
            continue
        relative = os.path.relpath(folder, runs_dir)
        grid.collect_run(folder, os.path.join(results_dir, RUNS_FOLDER, relative))
        collected += 1
    return collected


def write_tables(results_dir, baseline=aggregate.BASELINE):
    """runs.csv, summary.csv, paired.csv, cross_backend.csv, the figures and
    README.md from the collected runs.

    Returns `(summary_rows, paired_rows, cross_rows)`.
    """
    meta = load_meta(results_dir)
    if meta is None:
        raise ExperimentError(f"{results_dir!r} holds no {results_markdown.EXPERIMENT_FILE}; run the grid first")
    records = aggregate.load_run_records(os.path.join(results_dir, RUNS_FOLDER))
    records.sort(key=lambda record: (record["dataset"], record["model"], record["seed"], record["backend"]))
    summary_rows = aggregate.summarize(records)
    paired_rows = aggregate.paired_comparisons(records, baseline=baseline)
    cross_rows, backends = aggregate.cross_backend(records)
    aggregate.write_csv(os.path.join(results_dir, results_markdown.RUNS_FILE), records, aggregate.RUN_FIELDS)
    aggregate.write_csv(os.path.join(results_dir, results_markdown.SUMMARY_FILE), summary_rows, aggregate.SUMMARY_FIELDS)
    aggregate.write_csv(os.path.join(results_dir, results_markdown.PAIRED_FILE), paired_rows, aggregate.PAIRED_FIELDS)
    cross_path = os.path.join(results_dir, results_markdown.CROSS_BACKEND_FILE)
    if cross_rows:
        aggregate.write_csv(cross_path, cross_rows, aggregate.cross_backend_fields(backends))
    elif os.path.exists(cross_path):
        os.remove(cross_path)
    figures.write_figures(results_dir, RUNS_FOLDER)
    # The README is written from the CSVs just written, exactly as --docs-only reads them.
    meta, summary_csv, paired_csv, cross_csv = results_markdown.load_experiment(results_dir)
    readme = results_markdown.experiment_readme(
        meta, summary_csv, paired_csv, cross_csv, figures=results_markdown.present_figures(results_dir)
    )
    atomic_write_text(os.path.join(results_dir, "README.md"), readme)
    return summary_rows, paired_rows, cross_rows


def write_results_document(results_root, output_path, command):
    atomic_write_text(output_path, results_markdown.results_document(results_root, command=command))
