"""Where to look for dataset files when the caller gives no `data_dir`.

Order, first match wins:
1. `data_dir` when given, and nothing else (an explicit folder is never
   silently replaced by another one);
2. each folder of `$KERAS_GRADATTN_DATA` (`os.pathsep`-separated);
3. per-format defaults: `$TFDS_DATA_DIR` and `~/tensorflow_datasets` for
   tensorflow-datasets, `~/.medmnist` for MedMNIST (the medmnist package's
   default), and the Debian convention `/usr/share/datasets/<name>` (e.g.
   the `dataset-fashion-mnist` package) for the IDX files.
"""

import os

DATA_ENV_VAR = "KERAS_GRADATTN_DATA"
SYSTEM_DATASET_DIRS = ("/usr/share/datasets", "/usr/local/share/datasets")


def user_roots():
    """The folders listed in `$KERAS_GRADATTN_DATA`, expanded."""
    value = os.environ.get(DATA_ENV_VAR, "")
    return [os.path.expanduser(part) for part in value.split(os.pathsep) if part]


def _with_subfolders(roots, folder_names):
    candidates = []
    for root in roots:
        candidates.append(root)
        candidates.extend(os.path.join(root, name) for name in folder_names)
    return candidates


def _unique(paths):
    seen, result = set(), []
    for path in paths:
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if path not in seen:
            seen.add(path)
            result.append(path)
    return result


def folder_candidates(spec, data_dir, system_defaults=False, extra_defaults=()):
    """Folders that may hold `spec`'s files: the root itself or a named subfolder."""
    if data_dir is not None:
        return _unique(_with_subfolders([os.fspath(data_dir)], spec.folder_names))
    roots = user_roots()
    candidates = _with_subfolders(roots, spec.folder_names)
    candidates.extend(os.path.expanduser(path) for path in extra_defaults)
    if system_defaults:
        for system_dir in SYSTEM_DATASET_DIRS:
            candidates.extend(os.path.join(system_dir, name) for name in spec.folder_names)
    return _unique(candidates)


def tfds_candidates(data_dir):
    """tensorflow-datasets data folders to try."""
    if data_dir is not None:
        roots = [os.fspath(data_dir), os.path.join(os.fspath(data_dir), "tensorflow_datasets")]
        return _unique(roots)
    candidates = []
    for root in user_roots():
        candidates += [root, os.path.join(root, "tensorflow_datasets")]
    if os.environ.get("TFDS_DATA_DIR"):
        candidates.append(os.environ["TFDS_DATA_DIR"])
    candidates.append("~/tensorflow_datasets")
    return _unique(candidates)
