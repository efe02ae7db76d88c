"""One process at a time in a run directory: an exclusive lock on `<run dir>/run.lock`.

Two `gradattn-train` processes in one directory would both append to
history.csv, overwrite best.keras and write event files side by side. The
first takes an exclusive `flock` on `run.lock` for the life of its run and
writes its pid, host and start time inside; a second one is refused with a
`RunDirectoryInUse` naming them. The kernel drops a `flock` when its process
ends, however it ends, so a killed run leaves at most a stale file behind,
and the next `--resume` takes the lock over.

Standard library only, so the grid's parent process could use it too.
"""

import datetime
import errno
import json
import os
import socket

try:
    import fcntl
except ImportError:  # Windows: no flock (see RunLock.acquire)
    fcntl = None

from keras_gradattn.training.errors import RunDirectoryInUse

LOCK_FILE = "run.lock"


class RunLock:
    """The lock of one run directory; `acquire()`, then `release()` (or use `with`)."""

    def __init__(self, run_dir):
        self.run_dir = os.path.abspath(os.fspath(run_dir))
        self.path = os.path.join(self.run_dir, LOCK_FILE)
        self._file = None
        self._created_dirs = []

    @property
    def held(self):
        return self._file is not None

    def acquire(self):
        """Creates the run directory if needed and locks it.

        Raises `RunDirectoryInUse` (nothing created or changed) when another
        process holds it.
        """
        if fcntl is None:
            # Windows has no flock, and its byte-range locks (msvcrt.locking)
            # are not dropped the same way when a process is killed; runs there
            # stay unguarded, as the documentation says.
            return self
        self._make_run_dir()
        try:
            self._file = self._lock_file()
        except BaseException:
            self._remove_created_dirs()
            raise
        if self._file is None:
            self._created_dirs = []  # unguarded: the directories are the run's now
            return self
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        # Written in place: replacing the file would give it a new inode that
        # this process does not hold.
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps(holder) + "\n")
        self._file.flush()
        return self

    def _make_run_dir(self):
        """Creates the run directory and its missing parents, remembering
        those it created (deepest first) for `release`."""
        missing = []
        path = self.run_dir
        while not os.path.isdir(path):
            missing.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        os.makedirs(self.run_dir, exist_ok=True)
        self._created_dirs = missing

    def _lock_file(self):
        while True:
            file = open(self.path, "a+")  # creates it if needed, changes nothing in an existing one
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    # A file system without flock (some network mounts): run
                    # unguarded rather than not at all.
                    file.close()
                    return None
                file.seek(0)
                holder_text = file.read()
                file.close()
                raise RunDirectoryInUse(self._in_use_message(holder_text)) from None
            # The previous holder removes the file when it releases; if it did
            # so between our open and our flock, we hold a file nobody else
            # will open: start again on the path's current file.
            try:
                same_file = os.path.samestat(os.fstat(file.fileno()), os.stat(self.path))
            except FileNotFoundError:
                same_file = False
            if same_file:
                return file
            file.close()

    def _in_use_message(self, holder_text):
        try:
            holder = json.loads(holder_text)
            who = f"process {holder['pid']} on host {holder['host']} (started {holder['started']})"
        except (ValueError, TypeError, KeyError):
            who = "another process (it has not written its pid yet)"
        return (
            f"run directory {self.run_dir!r} is in use by {who}; wait for that run to end, "
            "or choose another --output-dir."
        )

    def release(self):
        """Unlocks and removes the lock file, and the directories `acquire`
        created if nothing else was written in them."""
        if self._file is None:
            return
        try:
            # Removed while still held, so no process can lock a file that is
            # about to disappear (see the check in _lock_file).
            os.remove(self.path)
        except OSError:
            pass
        self._file.close()
        self._file = None
        self._remove_created_dirs()

    def _remove_created_dirs(self):
        for path in self._created_dirs:
            try:
                os.rmdir(path)  # only when empty
            except OSError:
                break
        self._created_dirs = []

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
