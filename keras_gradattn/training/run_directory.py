"""A run directory: its files, what it holds (nothing, a run to resume, a
finished run), and its status file.

    RUN_DIR/config.json status.json history.csv training_state.json best.keras
            best.json metrics.json gradient_probe.json confusion_matrix.png
            logs/ backup/ run.lock

Everything is decided before anything is written: `check_output_dir`
creates nothing, so a run that fails its checks leaves nothing behind.
`run.lock` exists while a process runs there (run_lock.py); it is no part
of the run.
"""

import dataclasses
import datetime
import json
import os
import tempfile

from keras_gradattn.training.config import RESUME_IGNORED_FIELDS
from keras_gradattn.training.config import same_setting
from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.training.run_lock import LOCK_FILE
from keras_gradattn.utils import atomic_write_json


@dataclasses.dataclass
class RunFiles:
    """Where a run's files go, relative to its directory."""

    root: str

    def __post_init__(self):
        self.root = os.fspath(self.root)

    def path(self, name):
        return os.path.join(self.root, name)

    config = property(lambda self: self.path("config.json"))
    status = property(lambda self: self.path("status.json"))
    history = property(lambda self: self.path("history.csv"))
    training_state = property(lambda self: self.path("training_state.json"))
    best_model = property(lambda self: self.path("best.keras"))
    best_record = property(lambda self: self.path("best.json"))
    gradient_probe = property(lambda self: self.path("gradient_probe.json"))
    metrics = property(lambda self: self.path("metrics.json"))
    confusion_matrix = property(lambda self: self.path("confusion_matrix.png"))
    logs = property(lambda self: self.path("logs"))
    backup = property(lambda self: self.path("backup"))
    gradient_logs = property(lambda self: os.path.join(self.logs, "gradients"))


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
    files = RunFiles(config.output_dir)
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
        if set(os.listdir(root)) - {LOCK_FILE}:
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
        if key not in RESUME_IGNORED_FIELDS and not same_setting(key, previous.get(key), current.get(key))
    ]
    if differing:
        raise TrainingSetupError(
            f"--resume: the run in {root!r} was started with a different configuration: "
            f"{'; '.join(differing)}."
        )
    status = read_json(files.status) or {}
    if status.get("status") == "finished":
        return "finished"
    if status.get("status") == "diverged":
        raise TrainingSetupError(
            f"--resume: the run in {root!r} diverged ({status.get('message')}); start a new run "
            "(e.g. with a lower --lr) in another --output-dir."
        )
    return "resume"


def read_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)


def write_status(files, status, **fields):
    record = read_json(files.status) or {"attempts": []}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if status == "running":
        record["attempts"].append({"started": now, "pid": os.getpid()})
    record.update(status=status, updated=now, **fields)
    atomic_write_json(files.status, record)
