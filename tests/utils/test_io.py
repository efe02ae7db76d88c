import json
import os

import pytest

from keras_gradattn.utils import atomic_path
from keras_gradattn.utils import atomic_write_json
from keras_gradattn.utils import atomic_write_text

pytestmark = pytest.mark.backend_independent


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "out" / "config.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert os.listdir(target.parent) == ["config.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "history.csv"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as file:
                file.write("half")
            raise RuntimeError("writer died")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["history.csv"]


def test_temporary_keeps_extension(tmp_path):
    with atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.endswith(".keras")
        open(tmp, "w").close()
    assert (tmp_path / "model.keras").exists()


def test_written_files_get_ordinary_permissions(tmp_path):
    # As open(path, "w") would: 0o666 less the umask, not mkstemp's 0o600.
    umask = os.umask(0o022)
    os.umask(umask)
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {})
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask


def test_write_or_check_generated(tmp_path, capsys):
    from keras_gradattn.utils.io import write_or_check_generated

    target = tmp_path / "api.md"
    assert write_or_check_generated(str(target), "v1\n", check=True, regenerate_command="make") == 1
    assert not target.exists()  # checking never writes
    assert write_or_check_generated(str(target), "v1\n", check=False, regenerate_command="make") == 0
    assert target.read_text() == "v1\n"
    assert write_or_check_generated(str(target), "v1\n", check=True, regenerate_command="make") == 0
    assert write_or_check_generated(str(target), "v2\n", check=True, regenerate_command="make") == 1
    assert target.read_text() == "v1\n"
    assert "is stale: run make" in capsys.readouterr().err
