"""One training run, start to finish: config -> data -> model -> fit -> run directory.

The run's settings are `TrainConfig` (config.py); its directory's files and
states are run_directory.py's; what config.json records beside the settings
is provenance.py's. Here: preparing data and model, `fit` with the
protocol's callbacks, the test evaluation and the gradient-flow probe.

```python
from keras_gradattn.training import TrainConfig, run_training
result = run_training(TrainConfig(dataset="digits", model="resnet18", epochs=5,
                                  output_dir="runs/digits-resnet18"))
result.metrics["top1_accuracy"]
```

Everything that can be checked before training is checked before anything
is written in the run directory (`TrainingSetupError`, or the data layer's
`DatasetError`): a run that fails validation leaves nothing behind. Only the
lock (run_lock.py) comes first, and goes again with the process.
"""

import dataclasses
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

from keras_gradattn import data as data_lib
from keras_gradattn.analysis import probe_gradient_flow
from keras_gradattn.callbacks import TrainingJournal
from keras_gradattn.data.device_resident import DEVICE_DATA_LIMIT_BYTES
from keras_gradattn.data.device_resident import device_bytes
from keras_gradattn.data.device_resident import split_offsets
from keras_gradattn.data.registry import NO_AUGMENTATION
from keras_gradattn.data.pipeline import augmentation_seed
from keras_gradattn.models import create_model
from keras_gradattn.training import metrics as metrics_lib
from keras_gradattn.training import protocol
from keras_gradattn.training.config import JIT_COMPILE
from keras_gradattn.training.config import validate_config
from keras_gradattn.training.config import with_gradient_log_freq
from keras_gradattn.training.distribution import pad_evaluation_batches
from keras_gradattn.training.distribution import setup_distribution
from keras_gradattn.training.errors import ProcessLost
from keras_gradattn.training.errors import TrainingDiverged
from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.training.installation import check_packages
from keras_gradattn.training.installation import describe_devices
from keras_gradattn.training.installation import device_line
from keras_gradattn.training.installation import gpu_advice
from keras_gradattn.training.plots import plot_confusion_matrix
from keras_gradattn.training.provenance import write_config
from keras_gradattn.training.run_directory import RunFiles
from keras_gradattn.training.run_directory import check_output_dir
from keras_gradattn.training.run_directory import read_json
from keras_gradattn.training.run_directory import write_status
from keras_gradattn.training.run_lock import LOCK_FILE
from keras_gradattn.training.run_lock import RunLock
from keras_gradattn.utils import atomic_write_json
from keras_gradattn.utils.parameters import count_parameters

# --- preparing data and model -----------------------------------------------


@dataclasses.dataclass
class TrainingResult:
    run_dir: str
    metrics: dict = None
    already_finished: bool = False


@dataclasses.dataclass
class Prepared:
    """What a run trains on and with.

    `model` is what `fit` trains: the classifier itself, or with the device
    data path (`data_placement == "device"`) a `DeviceDataModel` around it
    whose batches are row indices. `classifier` is the model kept and
    inspected either way; `validation_images` the host pipeline's validation
    batches (images), for the instruments that call the classifier.
    """

    splits: object
    train: object
    validation: object
    test: object
    model: object
    distribution: object
    classifier: object = None
    data_placement: str = "host"
    validation_images: object = None

    def __post_init__(self):
        if self.classifier is None:
            self.classifier = self.model
        if self.validation_images is None:
            self.validation_images = self.validation


def resolve_data_placement(config, splits, distribution=None):
    """Where this run's images live and are augmented: `"device"` or `"host"`.

    `--data-placement auto` picks the device when the backend computes on an
    accelerator and every split is in memory within `DEVICE_DATA_LIMIT_BYTES`,
    except on TensorFlow for datasets it augments: there its image layers
    have no XLA kernel, and the whole step would run without XLA. On a CPU
    the host pipeline is kept: the device path measured level with it
    (docs/benchmarks.md). `distribution`'s replicas must not share one random
    state for in-step augmentation (TensorFlow's strategies do).
    """
    in_memory = all(split.in_memory for split in splits)
    augments = splits.spec.augmentation != NO_AUGMENTATION
    mirrored = augments and distribution is not None and distribution.mirrors_random_state
    if config.data_placement == "host":
        return "host"
    if config.data_placement == "device":
        if not in_memory:
            raise TrainingSetupError(
                f"--data-placement device needs in-memory splits, but {config.dataset} streams from "
                "tensorflow-datasets; use --data-placement host (or auto)."
            )
        if mirrored:
            raise TrainingSetupError(
                f"--data-placement device with --distribute on TensorFlow would repeat {config.dataset}'s "
                "augmentation draws on every replica (they share one random state); use --data-placement host "
                "(or auto), or the jax or torch backend."
            )
        return "device"
    from keras_gradattn.backend import compute_devices
    from keras_gradattn.backend import only_cpus

    if mirrored or (augments and keras.backend.backend() == "tensorflow"):
        return "host"
    fits = in_memory and device_bytes(splits) <= DEVICE_DATA_LIMIT_BYTES
    return "device" if fits and not only_cpus(compute_devices()) else "host"


def with_recorded_placement(config, files, state):
    """A resumed run keeps the data placement it started with (its backup's
    layout depends on it): `auto` becomes the one config.json recorded, the
    host for runs recorded before the choice existed."""
    if state != "resume" or config.data_placement != "auto":
        return config
    recorded = read_json(files.config).get("data_placement") or "host"
    return dataclasses.replace(config, data_placement=recorded)


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
    shard = (distribution.process_id, distribution.num_processes)
    if resolve_data_placement(config, splits, distribution) == "device":
        return splits, _index_pipelines(config, splits, distribution, shard, common)
    train = data_lib.make_pipeline(
        splits.train, spec, training=True, drop_remainder=distribution.drop_training_remainder, shard=shard, **common
    )
    train = distribution.distribute_training_data(train)
    validation = pad_evaluation_batches(data_lib.make_pipeline(splits.validation, spec, **common), multiple)
    # Each process predicts its share of the test split, gathered afterwards
    # (`_predict`): every test example counts once.
    test_share = splits.test
    if distribution.num_processes > 1 and not distribution.gathers_predictions:
        test_share = splits.test.take(_test_rows(len(splits.test), distribution))
    test = pad_evaluation_batches(data_lib.make_pipeline(test_share, spec, **common), multiple)
    return splits, HostBatches(train, validation, test)


@dataclasses.dataclass
class HostBatches:
    """The host pipeline's batches: images and labels."""

    train: object
    validation: object
    test: object
    placement = "host"


@dataclasses.dataclass
class DeviceBatches(HostBatches):
    """Batches of row indices into the device's copy of the splits, and the
    host pipeline's validation images for the instruments that call the
    classifier."""

    validation_images: object = None
    placement = "device"


def _index_pipelines(config, splits, distribution, shard, common):
    offsets = split_offsets(splits)
    multiple = distribution.batch_multiple
    pipeline = dict(batch_size=config.batch_size, pipeline=config.pipeline)
    train = data_lib.make_index_pipeline(
        splits.train, training=True, seed=config.seed, drop_remainder=distribution.drop_training_remainder,
        shard=shard, offset=offsets["train"], **pipeline,
    )  # fmt: skip
    train = distribution.distribute_training_data(train)
    validation = data_lib.make_index_pipeline(splits.validation, offset=offsets["validation"], **pipeline)
    test_share, test_rows = splits.test, None
    if distribution.num_processes > 1 and not distribution.gathers_predictions:
        rows = _test_rows(len(splits.test), distribution)
        test_share, test_rows = splits.test.take(rows), offsets["test"] + rows
    test = data_lib.make_index_pipeline(test_share, offset=offsets["test"], rows=test_rows, **pipeline)
    validation_images = data_lib.make_pipeline(splits.validation, splits.spec, **common)
    return DeviceBatches(
        train, pad_evaluation_batches(validation, multiple), pad_evaluation_batches(test, multiple),
        validation_images=validation_images,
    )  # fmt: skip


def _test_rows(count, distribution, process_id=None):
    """The rows of a `count`-example test split that process `process_id`
    (default: this one) predicts: every `num_processes`-th, the shorter shares
    completed by repeating a row, so that every process runs the same number
    of equal batches (JAX's processes compute each batch together). The
    repeated row's prediction lands twice on the same place when gathered."""
    process_id = distribution.process_id if process_id is None else process_id
    rows = np.arange(process_id, count, distribution.num_processes)
    length = -(-count // distribution.num_processes)
    return np.concatenate([rows, np.full(length - len(rows), rows[-1] if len(rows) else count - 1)]).astype(int)


def _build_model(config, splits, batches, distribution):
    """The compiled model `fit` trains, and the classifier inside it."""
    spec = splits.spec
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
        classifier = model
        if batches.placement == "device":
            model = data_lib.DeviceDataModel.for_splits(
                classifier, splits, seed=_augmentation_seed(config, distribution)
            )
        optimizer = protocol.build_optimizer(
            config.learning_rate, config.weight_decay, config.decoupled_weight_decay
        )
        if config.precision == "mixed_float16":
            # float16 gradients underflow without loss scaling. Keras adds it
            # only when the model's own policy is mixed_float16; the policy is
            # set on the layers here, so add it explicitly.
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(
            optimizer=optimizer, jit_compile=JIT_COMPILE[config.jit_compile],
            steps_per_execution=config.steps_per_execution,
        )  # fmt: skip
    return distribution.prepare_model(model), classifier


def _augmentation_seed(config, distribution):
    """The device path's augmentation seed: the host pipeline's for this
    process's share, except where every process computes the whole global
    batch together (JAX), which needs one random state everywhere."""
    if distribution.shares_one_step:
        return config.seed
    return augmentation_seed(config.seed, (distribution.process_id, distribution.num_processes))


def prepare(config, distribution=None):
    """Seeds, distribution, data pipelines and the compiled model.

    `distribution`: an already set up one (a process group is joined before
    the run directory is decided); default: `setup_distribution`'s.
    """
    keras.utils.set_random_seed(config.seed)
    if distribution is None:
        distribution = setup_distribution(keras.backend.backend(), config.distribute)
    try:
        splits, batches = _load_data(config, distribution)
        model, classifier = _build_model(config, splits, batches, distribution)
    except BaseException:
        distribution.close()
        raise
    return Prepared(
        splits, batches.train, batches.validation, batches.test, model, distribution, classifier=classifier,
        data_placement=batches.placement, validation_images=getattr(batches, "validation_images", None),
    )  # fmt: skip


# --- the run ----------------------------------------------------------------


def _say(config, message):
    if config.verbose:
        print(message, flush=True)


def run_training(config, command_line=None, rerun_command=None, extra_callbacks=()):
    """Trains, evaluates on the test split and fills the run directory.

    `extra_callbacks` run after the protocol's own (a benchmark's timer, say);
    they must not change the training.

    With several processes (`config.process_group()`), every process calls
    this; process 0 decides the run directory's state and writes it, the
    others work in a private scratch directory deleted at the end.

    Returns a `TrainingResult`. Raises `TrainingSetupError` or `DatasetError`
    before anything is written (`RunDirectoryInUse`, a `TrainingSetupError`,
    while another process runs in the directory), `TrainingDiverged` (after recording it in
    `status.json`) when the loss becomes NaN or infinite, and `ProcessLost`
    when another process of a multi-process run stops answering.
    """
    config = config.resolved()
    validate_config(config)
    processes = config.process_group()
    notices = check_packages(config)
    if not processes.multi_process:
        return _run_alone(config, notices, command_line, rerun_command, extra_callbacks)
    # Joined first: JAX must know its processes before it computes anything,
    # and process 0 tells the others what it found in the run directory.
    distribution = setup_distribution(keras.backend.backend(), config.distribute, processes)
    try:
        if distribution.is_chief:
            return _run_as_chief(config, distribution, notices, command_line, rerun_command, extra_callbacks)
        return _run_as_worker(config, distribution, extra_callbacks)
    except Exception as error:
        reason = distribution.lost_process_reason(error)
        if reason is None:
            raise
        raise ProcessLost(
            f"process {processes.process_id} of {processes.num_processes}: another process stopped "
            f"answering ({reason}); the run directory keeps the last finished epoch: restart every "
            "process with --resume"
        ) from None
    finally:
        distribution.close()


def _run_alone(config, notices, command_line, rerun_command, extra_callbacks):
    state = check_output_dir(config)
    files = RunFiles(config.output_dir)
    if state == "finished":
        return _finished(files)

    # One process at a time in a run directory; released (and the directory
    # removed again if this run created it and wrote nothing) however the
    # run ends.
    lock = RunLock(files.root).acquire()
    try:
        # Decided again under the lock: another process may have started or
        # finished a run there since the first look.
        state = check_output_dir(config)
        if state == "finished":
            return _finished(files)
        config = with_recorded_placement(config, files, state)
        started = _announce_start(config, notices)
        prepared = prepare(config)
        try:
            return _train_prepared(config, files, prepared, state, started, command_line, rerun_command,
                                   extra_callbacks)  # fmt: skip
        finally:
            prepared.distribution.close()
    finally:
        lock.release()


def _finished(files):
    return TrainingResult(files.root, metrics=read_json(files.metrics), already_finished=True)


def _announce_start(config, notices):
    """The notices and the devices line; returns the run's start time."""
    started = time.perf_counter()
    for notice in notices if config.verbose else ():
        print(notice, file=sys.stderr, flush=True)
    _announce_devices(config)
    return started


def _train_prepared(config, files, prepared, state, started, command_line, rerun_command, extra_callbacks):
    # "auto" needs the number of steps an epoch; a resumed run keeps the
    # number it recorded.
    recorded = read_json(files.config)["train_config"].get("log_gradients") if state == "resume" else None
    config = with_gradient_log_freq(config, _steps_per_epoch(config, prepared), recorded)
    return _train_and_evaluate(config, files, prepared, state, started, command_line, rerun_command, extra_callbacks)


def _run_as_chief(config, distribution, notices, command_line, rerun_command, extra_callbacks):
    """Process 0: `_run_alone`'s checks and lock, its decision shared."""
    files = RunFiles(config.output_dir)
    lock = None
    try:
        state = check_output_dir(config)
        if state != "finished":
            lock = RunLock(files.root).acquire()
            state = check_output_dir(config)
    except (TrainingSetupError, data_lib.DatasetError) as error:
        distribution.broadcast_object({"error": str(error)})
        if lock is not None:
            lock.release()
        raise
    distribution.broadcast_object({"state": state})
    try:
        if state == "finished":
            return _finished(files)
        config = with_recorded_placement(config, files, state)
        started = _announce_start(config, notices)
        prepared = prepare(config, distribution)
        return _train_prepared(config, files, prepared, state, started, command_line, rerun_command, extra_callbacks)
    finally:
        if lock is not None:
            lock.release()


def _run_as_worker(config, distribution, extra_callbacks):
    """Processes 1..N-1: the same training, written to a scratch directory
    (a resumed run starts from a copy of process 0's directory, which must
    be on storage every process reads)."""
    decision = distribution.broadcast_object(None)
    if "error" in decision:
        raise TrainingSetupError(f"process 0 could not start the run: {decision['error']}")
    state = decision["state"]
    if state == "finished":
        return _finished(RunFiles(config.output_dir))
    scratch = tempfile.mkdtemp(prefix=f"gradattn-process{distribution.process_id}-")
    try:
        files = RunFiles(os.path.join(scratch, "run"))
        if state == "resume":
            shutil.copytree(config.output_dir, files.root, ignore=shutil.ignore_patterns(LOCK_FILE))
        config = with_recorded_placement(dataclasses.replace(config, output_dir=files.root, verbose=0), files, state)
        prepared = prepare(config, distribution)
        return _train_prepared(config, files, prepared, state, time.perf_counter(), None, None, extra_callbacks)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _announce_devices(config):
    """The devices line, and a warning on stderr (even with --quiet: the run
    would be many times slower than the machine allows) when the machine's
    NVIDIA GPU is not the backend's."""
    description = describe_devices()
    _say(config, device_line(description))
    advice = gpu_advice(description)
    if advice:
        print(advice, file=sys.stderr, flush=True)


def _steps_per_epoch(config, prepared):
    examples = len(prepared.splits.train)
    if prepared.distribution.drop_training_remainder:
        return examples // config.batch_size
    return -(-examples // config.batch_size)


def _train_and_evaluate(config, files, prepared, state, started, command_line, rerun_command, extra_callbacks=()):
    model = prepared.model
    os.makedirs(files.root, exist_ok=True)
    if state == "new":
        write_config(config, files, prepared, command_line, rerun_command)
    write_status(files, "running")
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
        gradient_log_freq=config.log_gradients, attention_batch=prepared.validation_images,
    )
    model.fit(
        prepared.train,
        validation_data=prepared.validation,
        epochs=config.epochs,
        # The pipelines shuffle (seeded, renewed every epoch); Keras must not.
        shuffle=False,
        callbacks=[*prepared.distribution.epoch_callbacks(), *protocol_callbacks.callbacks, *extra_callbacks],
        verbose=config.verbose,
    )
    diverged = protocol_callbacks.divergence.diverged
    if diverged is not None:
        message = (
            f"training loss became {diverged['loss']} at epoch {diverged['epoch']}, batch "
            f"{diverged['batch']}; training stopped, no test metrics written"
        )
        write_status(files, "diverged", message=message, diverged=diverged)
        raise TrainingDiverged(f"{message} (try a lower --lr); see {files.status}")
    if protocol_callbacks.best.restored_epoch is None:
        raise TrainingDiverged(f"no epoch produced a finite {protocol.MONITOR}; nothing to evaluate")

    evaluation_start = time.perf_counter()
    logits, labels = _predict(model, prepared)
    results = metrics_lib.classification_metrics(logits, labels)
    history = TrainingJournal.read_history(files.history)
    epoch_seconds = [row.get("epoch_seconds", 0.0) for row in history]
    best_record = read_json(files.best_record)
    results.update(
        split="test",
        dataset=config.dataset,
        model=config.model,
        trainable_parameters=count_parameters(prepared.classifier),
        epochs_run=len(history),
        max_epochs=config.epochs,
        stopped_early=len(history) < config.epochs,
        best_epoch=best_record["epoch"],
        best_val_accuracy=best_record["value"],
        training_time_s=float(sum(epoch_seconds)),
        time_per_epoch_s=float(np.mean(epoch_seconds)) if epoch_seconds else None,
        evaluation_time_s=time.perf_counter() - evaluation_start,
        wall_time_this_process_s=time.perf_counter() - started,
        num_processes=prepared.distribution.num_processes,
        data_placement=prepared.data_placement,
    )
    if config.probe_batches and not config.distribute:
        results["gradient_flow"] = _probe_gradient_flow(prepared.classifier, prepared, config, files)
    atomic_write_json(files.metrics, results)
    plot_confusion_matrix(
        metrics_lib.confusion_matrix(logits, labels),
        files.confusion_matrix,
        class_names=prepared.splits.spec.class_names,
        title=f"{config.model} on {config.dataset} (test, best epoch {best_record['epoch']}): "
        f"top-1 {results['top1_accuracy']:.2%}",
    )
    write_status(files, "finished")
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
        model, prepared.validation_images, max_batches=config.probe_batches, output_path=files.gradient_probe,
        # The classifier is compiled only where fit trains it directly.
        loss=prepared.model.loss,
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
    """Test logits and labels, in the test split's order; with several
    processes, each predicts its rows (`_test_rows`) and all gather them."""
    distribution = prepared.distribution
    test_split = prepared.splits.test
    logits = np.asarray(model.predict(prepared.test, verbose=0), dtype=np.float64)
    gathered = distribution.num_processes == 1 or distribution.gathers_predictions
    if test_split.in_memory:
        labels = test_split.labels if gathered else test_split.labels[_test_rows(len(test_split), distribution)]
    else:
        labels = np.concatenate([np.asarray(batch[1]) for batch in prepared.test])
        if distribution.batch_multiple > 1:
            weights = np.concatenate([np.asarray(batch[2]) for batch in prepared.test])
            labels = labels[weights > 0]
    # Evaluation batches may be padded for data-parallel runs: keep the real rows.
    logits, labels = logits[: len(labels)], np.asarray(labels)
    if gathered:
        return logits, labels
    count = len(test_split)
    all_logits = np.empty((count, logits.shape[1]), np.float64)
    all_labels = np.empty(count, labels.dtype)
    for process_id, (shard_logits, shard_labels) in enumerate(distribution.all_gather_object((logits, labels))):
        rows = _test_rows(count, distribution, process_id)
        all_logits[rows], all_labels[rows] = shard_logits, shard_labels
    return all_logits, all_labels
