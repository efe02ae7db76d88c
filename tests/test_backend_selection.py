import os
import subprocess
import sys

import pytest

from keras_gradattn import backend_selection

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--dataset", "digits", "--backend", "jax"], "jax"),
        (["--backend=torch", "--epochs", "2"], "torch"),
        (["--dataset", "digits"], None),
        (["--backend"], None),
    ],
)
def test_backend_flag(argv, expected):
    assert backend_selection.backend_flag(argv) == expected


def test_only_our_commands_are_recognised(tmp_path):
    assert backend_selection._is_our_command("/usr/local/bin/gradattn-train")
    assert backend_selection._is_our_command(os.path.join(REPO_ROOT, "scripts", "train.py"))
    assert not backend_selection._is_our_command(str(tmp_path / "train.py"))
    assert not backend_selection._is_our_command("/usr/bin/ipython")


@pytest.fixture
def keras_not_imported(monkeypatch):
    # select_backend() does nothing once Keras is loaded; pretend it is not.
    monkeypatch.delitem(sys.modules, "keras")
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")


def test_flag_of_our_command_wins(keras_not_imported, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    chosen = backend_selection.select_backend(["gradattn-train", "--backend", "torch"])
    assert chosen == "torch" and os.environ["KERAS_BACKEND"] == "torch"


def test_flags_of_other_programs_are_ignored(keras_not_imported, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert backend_selection.select_backend(["my_tool.py", "--backend", "torch"]) is None
    assert os.environ["KERAS_BACKEND"] == "tensorflow"


def test_installed_backend_when_tensorflow_is_missing(keras_not_imported, monkeypatch):
    real_find_spec = backend_selection.importlib.util.find_spec
    monkeypatch.setattr(
        backend_selection.importlib.util, "find_spec",
        lambda name: None if name in ("tensorflow", "jax") else real_find_spec(name),
    )
    assert backend_selection.select_backend(["python"]) == "torch"
    assert os.environ["KERAS_BACKEND"] == "torch"


def test_installed_keras_json_backend_is_kept(keras_not_imported, monkeypatch, tmp_path):
    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(backend_selection, "_installed", lambda name: name == "jax")
    assert backend_selection.select_backend(["python"]) is None
    assert "KERAS_BACKEND" not in os.environ


def test_keras_json_naming_a_missing_backend_falls_back(keras_not_imported, monkeypatch, tmp_path):
    # Keras writes keras.json with "tensorflow" on first import, installed or not.
    (tmp_path / "keras.json").write_text('{"backend": "tensorflow"}')
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(backend_selection, "_installed", lambda name: name == "jax")
    assert backend_selection.select_backend(["python"]) == "jax"


def test_explicit_environment_variable_is_never_overridden(keras_not_imported, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(backend_selection, "_installed", lambda name: False)
    assert backend_selection.select_backend(["python"]) is None
    assert os.environ["KERAS_BACKEND"] == "tensorflow"


def test_console_command_flag_takes_effect_before_keras_loads(tmp_path):
    command = tmp_path / "gradattn-train"
    command.write_text("import keras_gradattn, keras\nprint(keras.backend.backend())\n")
    result = subprocess.run(
        [sys.executable, str(command), "--backend", "torch"],
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": REPO_ROOT},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "torch"
