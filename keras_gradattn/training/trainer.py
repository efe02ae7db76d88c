"""One training run, start to finish: config -> data -> model -> fit -> run directory.

```python
from keras_gradattn.training import TrainConfig, run_training
result = run_training(TrainConfig(dataset="digits", model="resnet18", epochs=5,
                                  output_dir="runs/digits-resnet18"))
result.metrics["top1_accuracy"]
```

Everything that can be checked before training is checked before the run
directory is created (`TrainingSetupError`, or the data layer's
`DatasetError`): a run that fails validation leaves nothing behind.
"""

import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
import time

import keras
import numpy as np

from keras_gradattn import data as data_lib
from keras_gradattn.analysis import probe_gradient_flow
from keras_gradattn.models import create_model
from keras_gradattn.models.registry import get_model_entry
from keras_gradattn.training import metrics as metrics_lib
from keras_gradattn.training import protocol
from keras_gradattn.training.callbacks import TrainingJournal
from keras_gradattn.training.distribution import pad_evaluation_batches
from keras_gradattn.training.distribution import setup_distribution
from keras_gradattn.training.errors import TrainingDiverged
from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.training.plots import plot_confusion_matrix
from keras_gradattn.utils import atomic_write_json
from keras_gradattn.utils.parameters import count_parameters

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}
SPLITS = ("paper", "official")
PIPELINES = ("auto", "tf.data", "pydataset")
# Fields that may differ between a run and its resumption.
RESUME_IGNORED_FIELDS = ("resume", "verbose", "output_dir")
VERSION_PACKAGES = (
    "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "numpy",
    "tensorflow-datasets", "scikit-learn", "matplotlib",
)  # fmt: skip


@dataclasses.dataclass
class TrainConfig:
    """Every choice of a run. Defaults are the paper's protocol.

    `batch_size=None` means the paper's batch for the dataset (128; 64 for
    PAD-UFES-20); `output_dir=None` means `runs/<dataset>-<model>-seed<seed>`.
    `model_args` override `create_model` arguments; `dataset_args` are
    `load_dataset` options (synthetic only). See docs/training.md.
    """

    dataset: str = "digits"
    model: str = "gradattn_learned_pe"
    epochs: int = protocol.MAX_EPOCHS
    batch_size: int = None
    learning_rate: float = protocol.LEARNING_RATE
    weight_decay: float = protocol.WEIGHT_DECAY
    decoupled_weight_decay: bool = False
    seed: int = protocol.SEED
    data_dir: str = None
    output_dir: str = None
    split: str = "paper"
    precision: str = "float32"
    jit_compile: str = "auto"
    max_train_samples: int = None
    resume: bool = False
    distribute: bool = False
    pipeline: str = "auto"
    model_args: dict = dataclasses.field(default_factory=dict)
    dataset_args: dict = dataclasses.field(default_factory=dict)
    verbose: int = 2
    # None: every GRADIENT_LOG_FREQ steps, or off with `distribute` (the
    # optimizer hook is not tested under data parallelism).
    log_gradients: object = None
    probe_batches: int = protocol.PROBE_BATCHES

    def resolved(self):
        """A copy with the defaults that depend on other fields filled in."""
        batch_size = self.batch_size or protocol.paper_batch_size(self.dataset)
        output_dir = self.output_dir or os.path.join(
            "runs", f"{self.dataset}-{self.model}-seed{self.seed}"
        )
        log_gradients = self.log_gradients
        if log_gradients is None:
            log_gradients = 0 if self.distribute else protocol.GRADIENT_LOG_FREQ
        return dataclasses.replace(
            self, batch_size=batch_size, output_dir=os.fspath(output_dir), log_gradients=log_gradients
        )

    def to_record(self):
        record = dataclasses.asdict(self)
        record["backend"] = keras.backend.backend()
        return record


@dataclasses.dataclass
class TrainingResult:
    run_dir: str
    metrics: dict = None
    already_finished: bool = False


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def validate_config(config):
    """Raises `TrainingSetupError` (or `DatasetError`) for a config that cannot run."""
    for name in ("epochs", "batch_size"):
        if not _is_positive_int(getattr(config, name)):
            raise TrainingSetupError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(config, name)!r}.")
    if config.max_train_samples is not None and not _is_positive_int(config.max_train_samples):
        raise TrainingSetupError(f"--max-train-samples must be a positive integer, got {config.max_train_samples!r}.")
    if not isinstance(config.seed, (int, np.integer)) or isinstance(config.seed, bool) or config.seed < 0:
        raise TrainingSetupError(f"--seed must be a non-negative integer, got {config.seed!r}.")
    if not (isinstance(config.learning_rate, (int, float)) and config.learning_rate > 0):
        raise TrainingSetupError(f"--lr must be positive, got {config.learning_rate!r}.")
    if not (isinstance(config.weight_decay, (int, float)) and config.weight_decay >= 0):
        raise TrainingSetupError(f"--weight-decay must be >= 0, got {config.weight_decay!r}.")
    for name, value, choices in (
        ("--precision", config.precision, PRECISIONS),
        ("--jit-compile", config.jit_compile, tuple(JIT_COMPILE)),
        ("--split", config.split, SPLITS),
        ("--pipeline", config.pipeline, PIPELINES),
    ):
        if value not in choices:
            raise TrainingSetupError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    log_gradients = config.log_gradients
    if not (log_gradients in (None, 0, "epoch") or _is_positive_int(log_gradients)):
        raise TrainingSetupError(
            f"--log-gradients must be a positive number of steps, 'epoch' or 'off', got {log_gradients!r}."
        )
    if config.distribute and log_gradients not in (None, 0):
        raise TrainingSetupError(
            "--log-gradients is not available with --distribute (the optimizer hook is untested "
            "under data parallelism); leave it out or pass --log-gradients off."
        )
    if not (isinstance(config.probe_batches, (int, np.integer)) and not isinstance(config.probe_batches, bool)
            and config.probe_batches >= 0):
        raise TrainingSetupError(f"--probe-batches must be an integer >= 0, got {config.probe_batches!r}.")
    data_lib.get_dataset_spec(config.dataset)  # DatasetError listing the datasets
    try:
        entry = get_model_entry(config.model)
    except ValueError as error:
        raise TrainingSetupError(str(error)) from None
    unknown = sorted(set(config.model_args) - set(entry.allowed_overrides) | ({"dtype"} & set(config.model_args)))
    if unknown:
        allowed = [name for name in entry.allowed_overrides if name != "dtype"]
        raise TrainingSetupError(
            f"unknown --model-arg {', '.join(unknown)} for model {config.model!r}; allowed: "
            f"{', '.join(allowed)} (precision is --precision)."
        )


# --- the run directory ------------------------------------------------------


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_output_dir(config):
    """Decides what the run directory is for: a new run, a resumed one, or a
    finished one (returns `"new"`, `"resume"` or `"finished"`), or raises
    `TrainingSetupError`. Creates nothing."""
    files = protocol.RunFiles(config.output_dir)
    root = files.root
    if os.path.exists(root) and not os.path.isdir(root):
        raise TrainingSetupError(f"output directory {root!r} is a file, not a directory.")
    existing = _nearest_existing(root)
    if not os.path.isdir(existing):
        raise TrainingSetupError(
            f"cannot create output directory {root!r}: {existing!r} is a file, not a directory."
        )
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test.", dir=existing)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise TrainingSetupError(
            f"output directory {root!r} is not writable ({existing!r}: {error.strerror or error})."
        ) from None

    if not os.path.isdir(root):
        return "new"
    if not os.path.exists(files.config):
        if os.listdir(root):
            raise TrainingSetupError(
                f"output directory {root!r} exists, is not empty and holds no run (no config.json); "
                "choose another --output-dir."
            )
        return "new"
    if not config.resume:
        raise TrainingSetupError(
            f"output directory {root!r} already holds a run; pass --resume to continue it, "
            "or choose another --output-dir."
        )
    with open(files.config) as file:
        previous = json.load(file)["train_config"]
    current = config.to_record()
    differing = [
        f"{key} ({previous.get(key)!r} -> {current.get(key)!r})"
        for key in sorted(set(previous) | set(current))
        if key not in RESUME_IGNORED_FIELDS and _normalise(previous.get(key)) != _normalise(current.get(key))
    ]
    if differing:
        raise TrainingSetupError(
            f"--resume: the run in {root!r} was started with a different configuration: "
            f"{'; '.join(differing)}."
        )
    status = _read_json(files.status) or {}
    if status.get("status") == "finished":
        return "finished"
    if status.get("status") == "diverged":
        raise TrainingSetupError(
            f"--resume: the run in {root!r} diverged ({status.get('message')}); start a new run "
            "(e.g. with a lower --lr) in another --output-dir."
        )
    return "resume"


def _normalise(value):
    # JSON turns tuples into lists; compare in JSON terms.
    return json.loads(json.dumps(value, default=str))


def _read_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)


def _versions():
    versions = {}
    for package in VERSION_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def _git_state():
    folder = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


# --- preparing data and model -----------------------------------------------


@dataclasses.dataclass
class Prepared:
    splits: object
    train: object
    validation: object
    test: object
    model: object
    distribution: object


def _load_data(config, distribution):
    try:
        splits = data_lib.load_dataset(
            config.dataset, data_dir=config.data_dir, split=config.split, seed=config.seed,
            max_train_samples=config.max_train_samples, **config.dataset_args,
        )  # fmt: skip
    except data_lib.DatasetError:
        raise
    except ValueError as error:
        raise TrainingSetupError(f"{config.dataset}: {error}") from None
    spec = splits.spec
    multiple = distribution.batch_multiple
    if config.batch_size % multiple:
        raise TrainingSetupError(
            f"--batch-size {config.batch_size} must be a multiple of the {multiple} devices "
            "that --distribute splits each batch over."
        )
    if distribution.drop_training_remainder and len(splits.train) < config.batch_size:
        raise TrainingSetupError(
            f"--distribute drops partial training batches, but the {len(splits.train)} training "
            f"examples are fewer than one batch of {config.batch_size}."
        )
    common = dict(batch_size=config.batch_size, seed=config.seed, pipeline=config.pipeline)
    train = data_lib.make_pipeline(
        splits.train, spec, training=True, drop_remainder=distribution.drop_training_remainder, **common
    )
    validation = pad_evaluation_batches(data_lib.make_pipeline(splits.validation, spec, **common), multiple)
    test = pad_evaluation_batches(data_lib.make_pipeline(splits.test, spec, **common), multiple)
    return splits, train, validation, test


def _build_model(config, spec, distribution):
    arguments = dict(config.model_args)
    if config.precision != "float32":
        arguments["dtype"] = config.precision
    with distribution.scope():
        try:
            model = create_model(
                config.model, num_classes=spec.num_classes, input_shape=tuple(spec.input_shape), **arguments
            )
        except (ValueError, TypeError) as error:
            raise TrainingSetupError(
                f"model {config.model!r} cannot be built for {spec.name} (input "
                f"{tuple(spec.input_shape)}, {spec.num_classes} classes): {error}"
            ) from None
        optimizer = protocol.build_optimizer(
            config.learning_rate, config.weight_decay, config.decoupled_weight_decay
        )
        if config.precision == "mixed_float16":
            # float16 gradients underflow without loss scaling. Keras adds it
            # only when the model's own policy is mixed_float16; the policy is
            # set on the layers here, so add it explicitly.
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, jit_compile=JIT_COMPILE[config.jit_compile])
    return distribution.prepare_model(model)


def prepare(config):
    """Seeds, distribution, data pipelines and the compiled model."""
    keras.utils.set_random_seed(config.seed)
    distribution = setup_distribution(keras.backend.backend(), config.distribute)
    try:
        splits, train, validation, test = _load_data(config, distribution)
        model = _build_model(config, splits.spec, distribution)
    except BaseException:
        distribution.close()
        raise
    return Prepared(splits, train, validation, test, model, distribution)


# --- the run ----------------------------------------------------------------


def _say(config, message):
    if config.verbose:
        print(message, flush=True)


def run_training(config, command_line=None, rerun_command=None):
    """Trains, evaluates on the test split and fills the run directory.

    Returns a `TrainingResult`. Raises `TrainingSetupError` or `DatasetError`
    before anything is written, and `TrainingDiverged` (after recording it in
    `status.json`) when the loss becomes NaN or infinite.
    """
    config = config.resolved()
    validate_config(config)
    state = check_output_dir(config)
    files = protocol.RunFiles(config.output_dir)
    if state == "finished":
        return TrainingResult(files.root, metrics=_read_json(files.metrics), already_finished=True)

    started = time.perf_counter()
    prepared = prepare(config)
    try:
        return _train_and_evaluate(config, files, prepared, state, started, command_line, rerun_command)
    finally:
        prepared.distribution.close()


def _write_config(config, files, prepared, command_line, rerun_command):
    splits = prepared.splits
    record = {
        "train_config": config.to_record(),
        "command_line": command_line,
        "rerun_command": rerun_command,
        "backend": keras.backend.backend(),
        "dataset": {
            "spec": dataclasses.asdict(splits.spec),
            "split_policy": splits.split_policy,
            "sizes": splits.sizes(),
            "fingerprints": _fingerprints(splits),
        },
        "model": {
            "name": config.model,
            "trainable_parameters": count_parameters(prepared.model),
            "total_parameters": count_parameters(prepared.model, trainable_only=False),
            "config": prepared.model.get_config(),
        },
        "optimizer": keras.saving.serialize_keras_object(prepared.model.optimizer),
        "protocol": protocol.describe_protocol(),
        "distribution": prepared.distribution.describe(),
        "dtype_policy": config.precision,
        "versions": _versions(),
        "git": _git_state(),
        "platform": platform.platform(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(files.config, record)


def _fingerprints(splits):
    """SHA-256 of each in-memory split's images and labels: the run's exact
    data, whichever folder it was found in (streamed splits: `None`)."""
    fingerprints = {}
    for split in splits:
        if not split.in_memory:
            fingerprints[split.name] = None
            continue
        digest = hashlib.sha256(np.ascontiguousarray(split.images).tobytes())
        digest.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
        fingerprints[split.name] = digest.hexdigest()
    return fingerprints


def _write_status(files, status, **fields):
    record = _read_json(files.status) or {"attempts": []}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if status == "running":
        record["attempts"].append({"started": now, "pid": os.getpid()})
    record.update(status=status, updated=now, **fields)
    atomic_write_json(files.status, record)


def _train_and_evaluate(config, files, prepared, state, started, command_line, rerun_command):
    model = prepared.model
    os.makedirs(files.root, exist_ok=True)
    if state == "new":
        _write_config(config, files, prepared, command_line, rerun_command)
    _write_status(files, "running")
    sizes = prepared.splits.sizes()
    _say(
        config,
        f"{'Resuming' if state == 'resume' else 'Training'} {config.model} on {config.dataset} "
        f"(train/val/test {sizes['train']}/{sizes['validation']}/{sizes['test']}, batch "
        f"{config.batch_size}, {config.epochs} epochs max) with the {keras.backend.backend()} "
        f"backend; run directory {files.root}",
    )
    protocol_callbacks = protocol.build_callbacks(
        files, save_fn=prepared.distribution.save_model, verbose=1 if config.verbose else 0,
        gradient_log_freq=config.log_gradients, attention_batch=prepared.validation,
    )
    model.fit(
        prepared.train,
        validation_data=prepared.validation,
        epochs=config.epochs,
        # The pipelines shuffle (seeded, renewed every epoch); Keras must not.
        shuffle=False,
        callbacks=protocol_callbacks.callbacks,
        verbose=config.verbose,
    )
    diverged = protocol_callbacks.divergence.diverged
    if diverged is not None:
        message = (
            f"training loss became {diverged['loss']} at epoch {diverged['epoch']}, batch "
            f"{diverged['batch']}; training stopped, no test metrics written"
        )
        _write_status(files, "diverged", message=message, diverged=diverged)
        raise TrainingDiverged(f"{message} (try a lower --lr); see {files.status}")
    if protocol_callbacks.best.restored_epoch is None:
        raise TrainingDiverged(f"no epoch produced a finite {protocol.MONITOR}; nothing to evaluate")

    evaluation_start = time.perf_counter()
    logits, labels = _predict(model, prepared)
    results = metrics_lib.classification_metrics(logits, labels)
    history = TrainingJournal.read_history(files.history)
    epoch_seconds = [row.get("epoch_seconds", 0.0) for row in history]
    best_record = _read_json(files.best_record)
    results.update(
        split="test",
        dataset=config.dataset,
        model=config.model,
        trainable_parameters=count_parameters(model),
        epochs_run=len(history),
        max_epochs=config.epochs,
        stopped_early=len(history) < config.epochs,
        best_epoch=best_record["epoch"],
        best_val_accuracy=best_record["value"],
        training_time_s=float(sum(epoch_seconds)),
        time_per_epoch_s=float(np.mean(epoch_seconds)) if epoch_seconds else None,
        evaluation_time_s=time.perf_counter() - evaluation_start,
        wall_time_this_process_s=time.perf_counter() - started,
    )
    if config.probe_batches and not config.distribute:
        results["gradient_flow"] = _probe_gradient_flow(model, prepared, config, files)
    atomic_write_json(files.metrics, results)
    plot_confusion_matrix(
        metrics_lib.confusion_matrix(logits, labels),
        files.confusion_matrix,
        class_names=prepared.splits.spec.class_names,
        title=f"{config.model} on {config.dataset} (test, best epoch {best_record['epoch']}): "
        f"top-1 {results['top1_accuracy']:.2%}",
    )
    _write_status(files, "finished")
    _say(
        config,
        f"Test top-1 {results['top1_accuracy']:.4f} (best epoch {best_record['epoch']} of "
        f"{len(history)}); results in {files.root}",
    )
    return TrainingResult(files.root, metrics=results)


def _probe_gradient_flow(model, prepared, config, files):
    """The paper's per-layer output-gradient statistics, on validation batches
    and without changing the model (see keras_gradattn.analysis.probe); the
    full report goes to gradient_probe.json, a summary to metrics.json."""
    report = probe_gradient_flow(
        model, prepared.validation, max_batches=config.probe_batches, output_path=files.gradient_probe
    )
    statistics = report.statistics
    return {
        "probe_batches": len(report.losses),
        "num_layers": statistics["num_layers"],
        "health_score": statistics["health_score"],
        "vanishing_layers": len(statistics["vanishing_layers"]),
        "exploding_layers": len(statistics["exploding_layers"]),
        "bottleneck_layers": len(statistics["bottleneck_layers"]),
        "average_decay_rate": statistics["average_decay_rate"],
        "mean_norm": statistics["mean_norm"],
    }


def _predict(model, prepared):
    test_split = prepared.splits.test
    logits = np.asarray(model.predict(prepared.test, verbose=0), dtype=np.float64)
    if test_split.in_memory:
        labels = test_split.labels
    else:
        labels = np.concatenate([np.asarray(batch[1]) for batch in prepared.test])
        if prepared.distribution.batch_multiple > 1:
            weights = np.concatenate([np.asarray(batch[2]) for batch in prepared.test])
            labels = labels[weights > 0]
    # Evaluation batches may be padded for data-parallel runs: keep the real rows.
    return logits[: len(labels)], np.asarray(labels)
