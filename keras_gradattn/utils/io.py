"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

import contextlib
import json
import os
import sys
import tempfile


def _default_file_mode():
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_DEFAULT_FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` on success.

    The temporary file lives in the same directory so that the final
    `os.replace` is atomic. On any exception the temporary file is removed and
    an existing `path` is left untouched.

    Example:
    ```python
    with atomic_path("runs/a/best.keras") as tmp:
        model.save(tmp)
    ```
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, extension = os.path.splitext(os.path.basename(path))
    # Keep the extension: some writers (keras.Model.save) insist on it.
    handle, tmp_path = tempfile.mkstemp(
        prefix=f".{base}.", suffix=f".tmp{extension}", dir=directory
    )
    os.close(handle)
    try:
        yield tmp_path
        # mkstemp creates the file readable by its owner alone; give the result
        # the permissions an ordinary `open(path, "w")` would have.
        os.chmod(tmp_path, _DEFAULT_FILE_MODE)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


def atomic_write_bytes(path, data):
    with atomic_path(path) as tmp_path:
        with open(tmp_path, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj, indent=2):
    text = json.dumps(obj, indent=indent, sort_keys=True, default=_json_default)
    atomic_write_text(path, text + "\n")


def _json_default(value):
    # NumPy scalars and arrays reach us from metrics and configs.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"Cannot write {type(value).__name__} to JSON: {value!r}")


def write_or_check_generated(path, text, check, regenerate_command):
    """Writes a generated file atomically, or with `check` only compares it.

    Returns the exit status of a generator script: 0 written or up to date,
    1 (with a line on stderr) when `check` finds the file stale or missing.
    """
    if check:
        try:
            with open(path, encoding="utf-8") as file:
                current = file.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print(f"{path} is stale: run {regenerate_command}", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(path, text)
    print(path)
    return 0
