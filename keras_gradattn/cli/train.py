"""`gradattn-train`: train one model with the paper's protocol, into a run directory.

    gradattn-train                                   # GradAttn (learned PE) on digits, offline
    gradattn-train --dataset fashion_mnist --model resnet18 --epochs 10 --backend jax
    gradattn-train --output-dir runs/a --resume      # continue an interrupted run

Exit status: 0 done (or the run had already finished), 2 bad input (one line on
stderr, nothing written), 3 training diverged (NaN/inf loss; recorded in the
run's status.json), 4 another process of a multi-process run was lost (resume
with --resume), 130 interrupted. Flags are documented in docs/training.md
and by `--help`.

The flags are parsed before Keras is imported, so `--backend` chooses the
backend (keras_gradattn/cli/keras_backend.py).
"""

import argparse
import dataclasses
import os
import shlex
import sys

from keras_gradattn.backend import BACKENDS
from keras_gradattn.cli.arguments import BadInput
from keras_gradattn.cli.arguments import HelpFormatter
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import fail
from keras_gradattn.cli.arguments import option_value
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.arguments import program_name
from keras_gradattn.cli.keras_backend import choose_keras_backend
from keras_gradattn.cli.keras_backend import requested_backend

EXIT_OK, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_PROCESS_LOST, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
PROG = "train.py"
CONFIG_FLAG = "--config"


def _flag_type(parse):
    """An argparse type from a field's parser (ValueError -> its own message)."""
    if parse in (str, int, float):
        return parse  # argparse's own "invalid int value" messages

    def convert(text):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _fields():
    from keras_gradattn.training import TrainConfig

    return dataclasses.fields(TrainConfig)


def flag_of(field_name):
    """The flag that sets a `TrainConfig` field."""
    return {field.name: field.metadata["flag"] for field in _fields()}[field_name]


def build_parser():
    """The parser, derived from `TrainConfig`'s fields, grouped as `GROUPS`."""
    from keras_gradattn.data.registry import list_datasets
    from keras_gradattn.models import list_models
    from keras_gradattn.training.config import GROUPS

    parser = OneLineErrorParser(
        prog=PROG,
        description=(
            "Train a GradAttn or baseline model with the paper's protocol (Adam 1e-3 with "
            "coupled L2 1e-4, ReduceLROnPlateau and early stopping on validation accuracy, "
            "best weights restored) and write a run directory: config.json, history.csv, "
            "best.keras, metrics.json, confusion_matrix.png, logs/."
        ),
        formatter_class=HelpFormatter,
    )
    groups = {name: parser.add_argument_group(name, description) for name, description in GROUPS.items()}
    names = {"datasets": ", ".join(list_datasets()), "models": ", ".join(list_models())}
    for field in _fields():
        if field.name == "verbose":
            continue  # with --quiet below: one of the two
        meta = field.metadata
        add = groups[meta["group"]].add_argument
        common = dict(dest=field.name, help=meta["help"].format(**names))
        if meta["kind"] == "switch":
            add(meta["flag"], action="store_true", **common)
        elif meta["kind"] == "pairs":
            add(meta["flag"], action="append", type=_flag_type(meta["parse"]), default=[],
                metavar=meta["metavar"], **common)  # fmt: skip
        else:
            add(meta["flag"], type=_flag_type(meta["parse"]), choices=meta["choices"], default=field.default,
                metavar=meta["metavar"], **common)  # fmt: skip
    run = groups["run"]
    run.add_argument("--backend", choices=BACKENDS, default=None,
                     help="Keras backend; default: the --config file's, else $KERAS_BACKEND, else Keras' own "
                     "default (the first installed backend when that one is not)")  # fmt: skip
    run.add_argument(CONFIG_FLAG, metavar="FILE", default=None,
                     help="take the settings from FILE, a run's config.json (or a JSON object of the fields "
                     "of keras_gradattn.training.TrainConfig); flags given beside it win")  # fmt: skip
    output = run.add_mutually_exclusive_group()
    verbose = next(field for field in _fields() if field.name == "verbose")
    output.add_argument("--verbose", type=int, choices=verbose.metadata["choices"], default=None,
                        help=verbose.metadata["help"])  # fmt: skip
    output.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def read_config_file(path):
    """The `TrainConfig` fields (and backend) of a `--config` file, as a dict.

    Accepts a run's config.json (its `train_config`) or a JSON object of
    fields. Raises `BadInput` with one line when it cannot be used.
    """
    import json

    try:
        with open(path) as file:
            record = json.load(file)
    except OSError as error:
        raise BadInput(f"{CONFIG_FLAG} {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise BadInput(f"{CONFIG_FLAG} {path} is not JSON: {error}") from None
    if isinstance(record, dict) and isinstance(record.get("train_config"), dict):
        record = record["train_config"]
    if not isinstance(record, dict):
        raise BadInput(f"{CONFIG_FLAG} {path}: expected a JSON object of settings, got {type(record).__name__}")
    known = {field.name for field in _fields()} - {"verbose"}
    unknown = sorted(set(record) - known - {"backend", "verbose"})
    if unknown:
        raise BadInput(f"{CONFIG_FLAG} {path}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    if record.get("backend") is not None and record["backend"] not in BACKENDS:
        raise BadInput(f"{CONFIG_FLAG} {path}: backend {record['backend']!r} is not one of {', '.join(BACKENDS)}")
    return {key: value for key, value in record.items() if key != "verbose"}


def _namespace_from(record):
    """An argparse namespace holding a config file's values: argparse keeps
    what a namespace already has and sets only the flags given beside it."""
    namespace = argparse.Namespace()
    for field in _fields():
        if field.name in record:
            value = record[field.name]
            if field.metadata["kind"] == "pairs":
                value = list(dict(value).items())
            setattr(namespace, field.name, value)
    return namespace


def config_from_args(args):
    from keras_gradattn.training import TrainConfig

    if args.quiet:
        verbose = 0
    elif args.verbose is not None:
        verbose = args.verbose
    else:
        verbose = 1 if sys.stdout.isatty() else 2
    values = {field.name: getattr(args, field.name) for field in _fields() if field.name != "verbose"}
    for field in _fields():
        if field.metadata["kind"] == "pairs":
            values[field.name] = dict(values[field.name])
    return TrainConfig(**values, verbose=verbose)


def rerun_command(config, backend):
    """The command line that repeats the run described by a resolved `config`."""
    parts = ["gradattn-train"]
    for field in _fields():
        meta, value = field.metadata, getattr(config, field.name)
        if not meta["in_rerun"] or value is None:
            continue
        if meta["kind"] == "switch":
            parts += [meta["flag"]] if value else []
        elif meta["kind"] == "pairs":
            for key, item in value.items():
                parts += [meta["flag"], f"{key}={item!r}"]
        else:
            parts += [meta["flag"], value]
    parts += ["--backend", backend]
    return shlex.join(str(part) for part in parts)


def main(argv=None):
    """Runs `gradattn-train` with `argv` (default: the command line); returns
    the exit status."""
    prog = program_name(PROG, argv)
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]

    def _fail(message, code=EXIT_BAD_INPUT):
        return fail(prog, message, code)

    config_path = option_value(argv, CONFIG_FLAG)
    try:
        record = read_config_file(config_path) if config_path else {}
    except BadInput as error:
        return _fail(str(error))
    problem = choose_keras_backend(requested_backend(argv) or record.get("backend"))
    if problem:
        return _fail(problem)
    parser = build_parser()
    parser.prog = prog
    args, status = parse_command_line(parser, argv, namespace=_namespace_from(record))
    if args is None:
        return status
    problem = choose_keras_backend(args.backend)  # e.g. an abbreviated --back jax
    if problem:
        return _fail(problem)

    import logging

    import keras

    from keras_gradattn.data import DatasetError

    # tensorflow-datasets logs through absl while it looks for data; the
    # data layer's own error says what is missing, in one line.
    logging.getLogger("absl").setLevel(logging.ERROR)
    from keras_gradattn.training import ConfigFieldError
    from keras_gradattn.training import ProcessLost
    from keras_gradattn.training import TrainingDiverged
    from keras_gradattn.training import TrainingSetupError
    from keras_gradattn.training import run_training

    config = config_from_args(args)
    try:
        result = run_training(
            config,
            command_line=shlex.join([prog, *argv]),
            rerun_command=rerun_command(config.resolved(), keras.backend.backend()),
        )
    except ConfigFieldError as error:
        return _fail(error.describe(flag_of))
    except (TrainingSetupError, DatasetError) as error:
        return _fail(str(error))
    except TrainingDiverged as error:
        return _fail(f"training diverged: {error}", EXIT_DIVERGED)
    except ProcessLost as error:
        _fail(str(error), EXIT_PROCESS_LOST)
        # The group cannot shut down without the lost process: JAX's exit
        # handlers would wait for it, then abort (SIGABRT, pages of logs).
        # Leave at once; the run directory holds its last finished epoch.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_PROCESS_LOST)
    except KeyboardInterrupt:
        return _fail("interrupted; continue with --resume", EXIT_INTERRUPTED)
    if result.already_finished and config.verbose:
        print(f"{result.run_dir} already holds a finished run; nothing to do.")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
