"""Every choice of a training run, declared once: `TrainConfig`.

Each field's metadata holds what the command line needs to know about it:
its flag, its `--help` group and text, and how a flag's text becomes the
field's value. `gradattn-train` derives its parser, its config and the
command that reruns a run from these fields (keras_gradattn/cli/train.py),
and `validate_config` names fields, not flags: `ConfigFieldError.field` lets
a command say which of its flags was wrong. Defaults are the paper's
protocol (keras_gradattn/training/protocol.py).
"""

import ast
import dataclasses
import json
import os

import numpy as np

from keras_gradattn.training import protocol
from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.training.processes import DEFAULT_TIMEOUT_SECONDS
from keras_gradattn.training.processes import resolve_process_group

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}
SPLITS = ("paper", "official")
PIPELINES = ("auto", "tf.data", "pydataset")
DATA_PLACEMENTS = ("auto", "device", "host")
# The `--help` groups, in the order a run flows through them.
GROUPS = {
    "data": "which images, split and input pipeline",
    "model": "which model, and overrides of its arguments",
    "optimisation": "the paper's protocol unless changed here",
    "run": "where the run lives, its seed, backend and devices",
    "instruments": "gradient-flow measurements during and after training",
}
# Fields that may differ between a run and its resumption: how it is shown,
# where it is, and how many steps run per call (the steps are the same).
# The process-group fields too: a run may continue on another number of
# processes (the global batch, hence the training, is the same).
RESUME_IGNORED_FIELDS = (
    "resume", "verbose", "output_dir", "steps_per_execution",
    "num_processes", "process_id", "coordinator", "process_timeout",
)  # fmt: skip


class ConfigFieldError(TrainingSetupError):
    """A `TrainConfig` field with a value it cannot take.

    `template` says what was wrong and what is allowed, naming fields in
    braces (`"{epochs} must be a positive integer, got {value!r}."`) and
    taking other values from `values`. `str(error)` names the fields as
    they are; a command names them as its flags (`describe(name_of)`).
    """

    def __init__(self, field, template, **values):
        self.field = field
        self.template = template
        self.values = values
        super().__init__(self.describe())

    def describe(self, name_of=str):
        """The message, each field named by `name_of(field)`."""
        return self.template.format_map(_FieldNames(self.values, name_of))


class _FieldNames(dict):
    def __init__(self, values, name_of):
        super().__init__(values)
        self.name_of = name_of

    def __missing__(self, field):
        return self.name_of(field)


def parse_key_value(text):
    """`KEY=VALUE` -> `(KEY, VALUE)`, VALUE a Python literal or else a bare word."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a bare word, e.g. stem=cifar
    return key.strip(), parsed


def parse_gradient_log_freq(text):
    """`N` steps, `"auto"`, `"epoch"`, or `"off"`/`"0"` (0: no logging)."""
    if text in ("off", "0"):
        return 0
    if text in ("auto", "epoch"):
        return text
    try:
        steps = int(text)
    except ValueError:
        steps = 0
    if steps < 1:
        raise ValueError(f"{text!r} is not a positive number of steps, 'auto', 'epoch' or 'off'")
    return steps


def with_gradient_log_freq(config, steps_per_epoch, recorded=None):
    """A resolved `config` whose `log_gradients="auto"` became a number of
    steps: `recorded`, the number a resumed run recorded in its config.json
    (runs started before "auto" existed recorded 100), else
    `protocol.auto_gradient_log_freq(steps_per_epoch)`."""
    if config.log_gradients != "auto":
        return config
    if _is_positive_int(recorded):
        return dataclasses.replace(config, log_gradients=int(recorded))
    return dataclasses.replace(config, log_gradients=protocol.auto_gradient_log_freq(steps_per_epoch))


def same_setting(name, previous, current):
    """Whether a resumed run's `current` value of field `name` is the
    `previous` one its config.json recorded (JSON turns tuples into lists;
    `log_gradients="auto"` is whichever number of steps was recorded)."""
    if name == "log_gradients" and current == "auto" and _is_positive_int(previous):
        return True
    # Runs recorded before --data-placement existed trained on the host.
    if name == "data_placement" and previous is None:
        return current in ("auto", "host")
    return _as_json(previous) == _as_json(current)


def _as_json(value):
    return json.loads(json.dumps(value, default=str))


def _setting(default=None, *, flag, group, help, parse=str, choices=None, metavar=None, kind="value",
             in_rerun=True):  # fmt: skip
    """A `TrainConfig` field with its command-line description.

    `kind`: "value" (`--flag VALUE`), "switch" (`--flag` sets True) or
    "pairs" (repeatable `--flag KEY=VALUE`, collected into a dict).
    `in_rerun=False` leaves the field out of the rerun command (how a run
    is displayed or continued, not what it computes).
    """
    metadata = {"flag": flag, "group": group, "help": help, "parse": parse, "choices": choices,
                "metavar": metavar, "kind": kind, "in_rerun": in_rerun}  # fmt: skip
    if kind == "pairs":
        return dataclasses.field(default_factory=dict, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainConfig:
    """Every choice of a run. Defaults are the paper's protocol.

    `batch_size=None` means the paper's batch for the dataset (128; 64 for
    PAD-UFES-20); `output_dir=None` means `runs/<dataset>-<model>-seed<seed>`;
    `log_gradients="auto"` means every `protocol.auto_gradient_log_freq`
    steps (about ten logs an epoch; resolved once the data is loaded, and
    recorded as that number), or off with `distribute` on JAX and TensorFlow. `model_args` override `create_model` arguments;
    `dataset_args` are `load_dataset` options (synthetic only). See
    docs/training.md.
    """

    dataset: str = _setting(
        "digits", flag="--dataset", group="data",
        help="dataset name: {datasets}. 'digits' needs no download.")
    model: str = _setting(
        "gradattn_learned_pe", flag="--model", group="model", help="model name: {models}")
    epochs: int = _setting(
        protocol.MAX_EPOCHS, flag="--epochs", group="optimisation", parse=int, help="maximum number of epochs")
    batch_size: int = _setting(
        None, flag="--batch-size", group="optimisation", parse=int,
        help="global batch size; default: the paper's for the dataset (128; 64 for pad_ufes_20)")
    learning_rate: float = _setting(
        protocol.LEARNING_RATE, flag="--lr", group="optimisation", parse=float,
        help="initial learning rate (Adam)")
    weight_decay: float = _setting(
        protocol.WEIGHT_DECAY, flag="--weight-decay", group="optimisation", parse=float,
        help="weight decay, as coupled L2 added to the gradient (the paper's)")
    decoupled_weight_decay: bool = _setting(
        False, flag="--decoupled-weight-decay", group="optimisation", kind="switch",
        help="use AdamW (decoupled weight decay) instead of coupled L2")
    seed: int = _setting(
        protocol.SEED, flag="--seed", group="run", parse=int,
        help="seeds Keras (weights, dropout), the data split, shuffling and augmentation")
    data_dir: str = _setting(
        None, flag="--data-dir", group="data",
        help="folder holding the dataset's files; default: $KERAS_GRADATTN_DATA and the usual folders")
    output_dir: str = _setting(
        None, flag="--output-dir", group="run", help="run directory; default: runs/<dataset>-<model>-seed<seed>")
    split: str = _setting(
        "paper", flag="--split", group="data", choices=SPLITS,
        help="'paper': the paper's splits (70/15/15 re-split where it pooled); 'official': official train/test")
    precision: str = _setting(
        "float32", flag="--precision", group="optimisation", choices=PRECISIONS,
        help="dtype policy; mixed_float16 adds loss scaling; logits stay float32")
    jit_compile: str = _setting(
        "auto", flag="--jit-compile", group="run", choices=tuple(JIT_COMPILE),
        help="XLA/jit compilation of the train step ('auto': Keras decides)")
    steps_per_execution: int = _setting(
        1, flag="--steps-per-execution", group="run", parse=int, metavar="N",
        help="training steps per compiled call (TensorFlow and JAX; 1 on torch, which Keras runs step by "
        "step): fewer host round trips on a GPU; batch-level callbacks then see every N-th step")
    max_train_samples: int = _setting(
        None, flag="--max-train-samples", group="data", parse=int,
        help="train on a random subset of at most N examples (validation and test stay whole)")
    resume: bool = _setting(
        False, flag="--resume", group="run", kind="switch", in_rerun=False,
        help="continue the run in --output-dir where it stopped (it must have the same flags); "
        "starts it when it does not exist yet")
    distribute: bool = _setting(
        False, flag="--distribute", group="run", kind="switch",
        help="data-parallel training: over all local devices (JAX DataParallel, TensorFlow "
        "MirroredStrategy), or as one of several processes (--num-processes, or a launcher such as torchrun; "
        "the only way on torch)")
    num_processes: int = _setting(
        None, flag="--num-processes", group="run", parse=int, metavar="N", in_rerun=False,
        help="with --distribute: train as one of N processes (one per GPU or machine), each started with "
        "the same command; default: the launcher's (torchrun's WORLD_SIZE, KERAS_DISTRIBUTION_NUM_PROCESSES, "
        "TF_CONFIG), else 1")
    process_id: int = _setting(
        None, flag="--process-id", group="run", parse=int, metavar="I", in_rerun=False,
        help="with --num-processes: this process's index, 0 to N-1; process 0 writes the run directory")
    coordinator: str = _setting(
        None, flag="--coordinator", group="run", metavar="HOST:PORT", in_rerun=False,
        help="with --num-processes: where process 0 listens for the others (the same for every process)")
    process_timeout: float = _setting(
        None, flag="--process-timeout", group="run", parse=float, metavar="SECONDS", in_rerun=False,
        help="with --num-processes: how long to wait for the other processes, at the start and at every "
        f"exchange, before stopping with an error (default {DEFAULT_TIMEOUT_SECONDS:g})")
    pipeline: str = _setting(
        "auto", flag="--pipeline", group="data", choices=PIPELINES,
        help="input pipeline; 'auto': tf.data when TensorFlow is installed")
    data_placement: str = _setting(
        "auto", flag="--data-placement", group="data", choices=DATA_PLACEMENTS,
        help="where images are held and augmented: 'device' (every split on the accelerator, augmented inside "
        "the compiled train step; in-memory datasets only), 'host' (the input pipeline); 'auto': the device on "
        "an accelerator when the splits fit in 2 GiB, else the host")
    model_args: dict = _setting(
        flag="--model-arg", group="model", kind="pairs", parse=parse_key_value, metavar="KEY=VALUE",
        help="model override passed to create_model, VALUE a Python literal (repeatable), "
        "e.g. --model-arg stem=cifar --model-arg num_layers=2")
    dataset_args: dict = _setting(
        flag="--dataset-arg", group="data", kind="pairs", parse=parse_key_value, metavar="KEY=VALUE",
        help="dataset option (synthetic only: num_examples, image_size, channels, num_classes)")
    verbose: int = _setting(
        2, flag="--verbose", group="run", parse=int, choices=(0, 1, 2), in_rerun=False,
        help="Keras fit verbosity; default: 1 (progress bar) on a terminal, else 2")
    log_gradients: object = _setting(
        "auto", flag="--log-gradients", group="instruments", parse=parse_gradient_log_freq,
        metavar="N|auto|epoch|off",
        help="log per-layer norms of the gradients the optimizer applies (no extra pass) to "
        "TensorBoard in RUN_DIR/logs/gradients every N steps or each epoch; 'auto': every "
        f"ceil(steps per epoch / {protocol.GRADIENT_LOGS_PER_EPOCH}) steps, within "
        f"{protocol.GRADIENT_LOG_FREQ_BOUNDS[0]} and {protocol.GRADIENT_LOG_FREQ_BOUNDS[1]}, recorded in "
        "config.json and kept by --resume")
    probe_batches: int = _setting(
        protocol.PROBE_BATCHES, flag="--probe-batches", group="instruments", parse=int,
        help="after training, the paper's gradient-flow statistics (gradient of the loss with "
        "respect to every Conv/Dense/encoder layer's output) on this many validation batches, "
        "without changing the model: RUN_DIR/gradient_probe.json; 0 skips it")

    def resolved(self):
        """A copy with the defaults that depend on other fields filled in."""
        batch_size = self.batch_size or protocol.paper_batch_size(self.dataset)
        output_dir = self.output_dir or os.path.join(
            "runs", f"{self.dataset}-{self.model}-seed{self.seed}"
        )
        log_gradients = self.log_gradients
        if log_gradients is None:
            log_gradients = "auto"  # the default before "auto" was a word
        return dataclasses.replace(
            self, batch_size=batch_size, output_dir=os.fspath(output_dir), log_gradients=log_gradients
        )

    def process_group(self, environ=None):
        """This process's `ProcessGroupSpec`: from the process flags, else the
        launcher's environment, with `distribute`; a single process without.
        Raises `TrainingSetupError` for flags that cannot form a group."""
        flags = {"num_processes": self.num_processes, "process_id": self.process_id,
                 "coordinator": self.coordinator, "process_timeout": self.process_timeout}  # fmt: skip
        if not self.distribute:
            given = [name for name, value in flags.items() if value is not None]
            if given:
                raise ConfigFieldError(
                    given[0], "{%s} needs {distribute} (multi-process training is data-parallel)." % given[0]
                )
            return resolve_process_group(num_processes=1, process_id=0, environ={})
        return resolve_process_group(
            self.num_processes, self.process_id, self.coordinator, self.process_timeout, environ=environ
        )

    def to_record(self):
        """The fields, JSON-ready, and the Keras backend (config.json's `train_config`)."""
        import keras

        record = dataclasses.asdict(self)
        record["backend"] = keras.backend.backend()
        return record

    @classmethod
    def from_record(cls, record):
        """A config from `to_record`'s dict (config.json's `train_config`), or
        any dict of fields; other keys (the backend) are ignored."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in names})


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _is_non_negative_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


def validate_config(config):
    """Raises `ConfigFieldError` (or another `TrainingSetupError`, or the
    data layer's `DatasetError`) for a resolved config that cannot run."""
    from keras_gradattn.data import get_dataset_spec
    from keras_gradattn.models.registry import get_model_entry

    for name in ("epochs", "batch_size"):
        if not _is_positive_int(getattr(config, name)):
            raise ConfigFieldError(name, f"{{{name}}} must be a positive integer, got {{value!r}}.",
                                   value=getattr(config, name))  # fmt: skip
    if config.max_train_samples is not None and not _is_positive_int(config.max_train_samples):
        raise ConfigFieldError(
            "max_train_samples", "{max_train_samples} must be a positive integer, got {value!r}.",
            value=config.max_train_samples,
        )
    if not _is_non_negative_int(config.seed):
        raise ConfigFieldError("seed", "{seed} must be a non-negative integer, got {value!r}.", value=config.seed)
    if not (isinstance(config.learning_rate, (int, float)) and config.learning_rate > 0):
        raise ConfigFieldError(
            "learning_rate", "{learning_rate} must be positive, got {value!r}.", value=config.learning_rate
        )
    if not (isinstance(config.weight_decay, (int, float)) and config.weight_decay >= 0):
        raise ConfigFieldError("weight_decay", "{weight_decay} must be >= 0, got {value!r}.", value=config.weight_decay)
    for name, choices in (
        ("precision", PRECISIONS), ("jit_compile", tuple(JIT_COMPILE)), ("split", SPLITS), ("pipeline", PIPELINES),
        ("data_placement", DATA_PLACEMENTS),
    ):  # fmt: skip
        value = getattr(config, name)
        if value not in choices:
            raise ConfigFieldError(
                name, f"{{{name}}} must be one of {{choices}}; got {{value!r}}.", choices=", ".join(choices), value=value
            )
    log_gradients = config.log_gradients
    if not (log_gradients in (None, 0, "auto", "epoch") or _is_positive_int(log_gradients)):
        raise ConfigFieldError(
            "log_gradients",
            "{log_gradients} must be a positive number of steps, 'auto', 'epoch' or 'off', got {value!r}.",
            value=log_gradients,
        )
    processes = config.process_group()
    if config.batch_size % processes.num_processes:
        raise ConfigFieldError(
            "batch_size",
            "{batch_size} {value} must be a multiple of the {count} processes (each takes the same share "
            "of every global batch).",
            value=config.batch_size, count=processes.num_processes,
        )
    if not _is_positive_int(config.steps_per_execution):
        raise ConfigFieldError(
            "steps_per_execution", "{steps_per_execution} must be a positive integer, got {value!r}.",
            value=config.steps_per_execution,
        )
    if config.steps_per_execution > 1:
        import keras

        if keras.backend.backend() == "torch":
            raise ConfigFieldError(
                "steps_per_execution",
                "{steps_per_execution} must be 1 on the torch backend (Keras runs it one step per call), "
                "got {value}; allowed above 1: the tensorflow and jax backends.",
                value=config.steps_per_execution,
            )
    if not _is_non_negative_int(config.probe_batches):
        raise ConfigFieldError(
            "probe_batches", "{probe_batches} must be an integer >= 0, got {value!r}.", value=config.probe_batches
        )
    get_dataset_spec(config.dataset)  # DatasetError listing the datasets
    try:
        entry = get_model_entry(config.model)
    except ValueError as error:
        raise TrainingSetupError(str(error)) from None
    unknown = sorted(set(config.model_args) - set(entry.allowed_overrides) | ({"dtype"} & set(config.model_args)))
    if unknown:
        raise ConfigFieldError(
            "model_args",
            "unknown {model_args} {unknown} for model {model_name!r}; allowed: {allowed} ({precision} sets the "
            "precision).",
            unknown=", ".join(unknown), model_name=config.model,
            allowed=", ".join(name for name in entry.allowed_overrides if name != "dtype"),
        )
