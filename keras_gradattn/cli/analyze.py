"""analyze.py (the `gradattn-analyze` command): figures and a markdown report from runs' gradient logs.

    python scripts/analyze.py runs/resnet18 runs/gradattn_rope --output analysis/

For each RUN_DIR it reads the TensorBoard event files written by
GradientNormLogger (anywhere below RUN_DIR, e.g. RUN_DIR/logs) and, when
present, RUN_DIR/gradient_probe.json written by probe_gradient_flow, and
writes PNG figures and gradient_report.md into the output folder.
"""

import os
import re
import sys

from keras_gradattn.cli.arguments import BadInput
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import fail
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.arguments import program_arguments
from keras_gradattn.cli.keras_backend import choose_keras_backend

EXIT_BAD_INPUT = 2
PROG = "analyze.py"
REPORT_FILE_NAME = "gradient_report.md"


def build_parser():
    parser = OneLineErrorParser(
        prog=PROG,
        description="Plot gradient flow of training runs (GradientNormLogger logs, gradient probe) and write a report.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to analyze")
    parser.add_argument(
        "--output", default="gradient_analysis", help="folder for figures and report (default: ./gradient_analysis)"
    )
    parser.add_argument(
        "--names", nargs="+", metavar="NAME", help="display names of the runs, one per RUN_DIR (default: folder names)"
    )
    return parser


def _check_names(args):
    if args.names and len(args.names) != len(args.run_dirs):
        raise BadInput(f"--names needs one name per RUN_DIR; received {len(args.names)} names for {len(args.run_dirs)} runs")


def _file_stem(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def analyze(run_dirs, output, names=None):
    """Loads the runs, writes figures and the report; returns the written paths."""
    from keras_gradattn.analysis import figures
    from keras_gradattn.analysis.gradient_report import markdown_report
    from keras_gradattn.analysis.runs import RunDataError
    from keras_gradattn.analysis.runs import load_run
    from keras_gradattn.utils import atomic_write_text

    names = names or [None] * len(run_dirs)
    runs = [load_run(directory, name) for directory, name in zip(run_dirs, names)]
    seen = set()
    for run in runs:
        if run.name in seen:
            raise RunDataError(f"two runs are named {run.name!r}; pass distinct --names")
        seen.add(run.name)
    os.makedirs(output, exist_ok=True)
    written, per_run = [], {}
    for run in runs:
        stem, entries = _file_stem(run.name), {}

        def draw(title, suffix, function, *args):
            path = os.path.join(output, f"{stem}_{suffix}.png")
            function(*args, path)
            written.append(path)
            entries[title] = os.path.basename(path)

        if run.has_training_logs:
            draw("per-layer gradient norm over training", "grad_norm_heatmap", figures.training_heat_map, run)
            draw("per-stage gradient norm over training", "grad_norm_stages", figures.stage_curves, run)
        if run.depth_attention:
            draw("depth attention over training", "depth_attention", figures.depth_attention_curves, run)
        if run.connection:
            draw("learned skip connections over training", "connection", figures.connection_parameter_curves, run)
        if run.probe is not None:
            draw("gradient flow (probe, four panels)", "gradient_flow", figures.gradient_flow_panels, run.probe)
        per_run[run.name] = entries
    if len(runs) > 1:
        logged = [run for run in runs if run.has_training_logs]
        if len(logged) > 1:
            for suffix, function in (("stages", figures.compare_stage_curves), ("heatmaps", figures.compare_heat_maps)):
                path = os.path.join(output, f"compare_grad_norm_{suffix}.png")
                function(logged, path)
                written.append(path)
        if sum(run.probe is not None for run in runs) > 1:
            path = os.path.join(output, "compare_gradient_flow.png")
            figures.compare_probe_profiles(runs, path)
            written.append(path)
    report_path = os.path.join(output, REPORT_FILE_NAME)
    atomic_write_text(report_path, markdown_report(runs, per_run))
    written.append(report_path)
    return written


def main(argv=None):
    parser = build_parser()
    argv = program_arguments(parser, argv)
    args, status = parse_command_line(parser, argv, validate=_check_names)
    if args is None:
        return status
    # The analysis package imports Keras (the probe's model code).
    choose_keras_backend()
    from keras_gradattn.analysis.runs import RunDataError

    try:
        written = analyze(args.run_dirs, args.output, args.names)
    except RunDataError as error:
        return fail(parser.prog, str(error), EXIT_BAD_INPUT)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
