"""Errors the training layer raises for its callers to report."""


class TrainingSetupError(ValueError):
    """A run that cannot start as asked: bad arguments, a model that does not
    fit the data, an output directory that cannot be used, a resume whose
    configuration differs. Raised before anything is written; the message is
    one line that says what was wrong and what is allowed."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the run was stopped."""


class ProcessLost(RuntimeError):
    """Another process of a multi-process run stopped answering (it died, or
    a collective timed out). The run directory keeps its last finished
    epoch; the message says how to resume."""


class RunDirectoryInUse(TrainingSetupError):
    """Another process holds the run directory's lock (`run.lock`): two runs
    in one directory would write into each other's files. The message names
    that process (pid, host, start time)."""
