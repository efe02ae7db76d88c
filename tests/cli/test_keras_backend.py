"""How commands choose the Keras backend, and that importing the package does not."""

import os
import subprocess
import sys

import pytest

from keras_gradattn.cli import keras_backend

pytestmark = pytest.mark.backend_independent

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FORBIDDEN_PACKAGES = ("training", "data", "analysis", "experiments", "cli", "callbacks")


def _python(code, *argv, **environment):
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env.update(environment, PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_import_reads_no_argv_sets_no_environment_and_loads_no_keras():
    code = (
        "import os, sys, keras_gradattn\n"
        "print(os.environ.get('KERAS_BACKEND'), 'keras' in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith('keras_gradattn.')))"
    )
    assert _python(code, "--backend", "torch") == "None False []"


def test_public_api_loads_models_and_nothing_of_training_data_or_cli():
    code = (
        "import sys, keras_gradattn\n"
        "keras_gradattn.create_model, keras_gradattn.AdamL2, keras_gradattn.layers\n"
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('keras_gradattn.')}))"
    )
    loaded = eval(_python(code, KERAS_BACKEND="jax"))
    assert {"layers", "models", "optimizers"} <= set(loaded)
    assert not set(loaded) & set(FORBIDDEN_PACKAGES), loaded


def test_keras_file_loads_once_models_are_imported(tmp_path):
    path = tmp_path / "model.keras"
    _python(
        "import keras_gradattn\n"
        f"keras_gradattn.create_model('resnet18', input_shape=(32, 32, 3), stage_blocks=(1, 1, 1, 1)).save({str(path)!r})\n"
        "print('saved')",
        KERAS_BACKEND="jax",
    )
    code = f"import keras, keras_gradattn.models\nprint(type(keras.saving.load_model({str(path)!r})).__name__)"
    assert _python(code, KERAS_BACKEND="jax") == "ImageClassifier"


def test_command_applies_backend_flag_before_keras_loads():
    code = (
        "import sys\n"
        "from keras_gradattn.cli.keras_backend import choose_keras_backend, requested_backend\n"
        "choose_keras_backend(requested_backend(sys.argv[1:]))\n"
        "import keras\nprint(keras.backend.backend())"
    )
    assert _python(code, "--dataset", "digits", "--backend=torch", KERAS_BACKEND="jax") == "torch"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--dataset", "digits", "--backend", "jax"], "jax"),
        (["--backend=torch", "--epochs", "2"], "torch"),
        (["--dataset", "digits"], None),
        (["--backend"], None),
        (["--backend", "theano"], None),  # left for the parser, which lists the allowed names
    ],
)
def test_requested_backend(argv, expected):
    assert keras_backend.requested_backend(argv) == expected


@pytest.fixture
def keras_not_imported(monkeypatch):
    # choose_keras_backend() only checks once Keras is loaded; pretend it is not.
    monkeypatch.delitem(sys.modules, "keras")
    # Nor may it import Keras again into this test process.
    monkeypatch.setattr(keras_backend, "_import_keras", lambda: None)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")


def test_requested_backend_wins(keras_not_imported, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert keras_backend.choose_keras_backend("torch") is None
    assert os.environ["KERAS_BACKEND"] == "torch"


def test_first_installed_backend_when_keras_json_names_a_missing_one(keras_not_imported, monkeypatch, tmp_path):
    # Keras writes keras.json with "tensorflow" on first import, installed or not.
    (tmp_path / "keras.json").write_text('{"backend": "tensorflow"}')
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras_backend, "is_installed", lambda name: name in ("jax", "torch"))
    assert keras_backend.choose_keras_backend() is None
    assert os.environ["KERAS_BACKEND"] == "jax"


def test_installed_keras_json_backend_is_kept(keras_not_imported, monkeypatch, tmp_path):
    (tmp_path / "keras.json").write_text('{"backend": "torch"}')
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras_backend, "is_installed", lambda name: name == "torch")
    keras_backend.choose_keras_backend()
    assert "KERAS_BACKEND" not in os.environ


def test_explicit_environment_variable_is_kept(keras_not_imported, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(keras_backend, "is_installed", lambda name: False)
    keras_backend.choose_keras_backend()
    assert os.environ["KERAS_BACKEND"] == "tensorflow"


def test_another_backend_after_keras_loaded_is_refused():
    import keras

    current = keras.backend.backend()
    other = next(name for name in keras_backend.BACKENDS if name != current)
    problem = keras_backend.choose_keras_backend(other)
    assert problem.startswith(f"--backend {other}: Keras was already imported with the {current} backend")
    assert keras_backend.choose_keras_backend(current) is None


def test_startup_lines_are_filtered_and_other_lines_kept():
    # C++ writes go to file descriptor 2 directly, as TensorFlow's do.
    code = (
        "import os, sys\n"
        "from keras_gradattn.cli.keras_backend import startup_lines_filtered\n"
        "with startup_lines_filtered():\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "    os.write(2, b'I0000 00:00:1796112131.829875    2708 cpu_feature_guard.cc:227] This TensorFlow binary "
        "is optimized to use available CPU instructions in performance-critical operations.\\n')\n"
        "    os.write(2, b'To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
        "with the appropriate compiler flags.\\n')\n"
        "    os.write(2, b'I0000 00:00:1796112131.9 2708 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "    os.write(2, b'E0000 00:00:1.0 1 cuda_dnn.cc:1] a real TensorFlow error\\n')\n"
        "    print('a real warning', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "E0000 00:00:1.0 1 cuda_dnn.cc:1] a real TensorFlow error", "a real warning", "after",
    ]


@pytest.mark.parametrize("backend", keras_backend.BACKENDS)
def test_bad_input_is_exactly_one_line_under_every_backend(backend, tmp_path):
    """Raw stderr, nothing filtered: the program's own line and nothing else."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(KERAS_BACKEND=backend, PYTHONPATH=REPO, HOME=str(tmp_path))
    for arguments, expected in (
        (["--epochs", "-1"], "--epochs must be a positive integer"),
        (["--dataset", "fashion_mnist", "--data-dir", str(tmp_path)], "fashion_mnist: no data found"),
    ):
        result = subprocess.run(
            [sys.executable, os.path.join(REPO, "scripts", "train.py"), *arguments, "--output-dir", str(tmp_path / "run")],
            env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
        )  # fmt: skip
        assert result.returncode == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("train.py: error: ") and expected in lines[0], result.stderr
        assert not (tmp_path / "run").exists()


def test_errors_name_the_program_as_invoked(tmp_path):
    """`gradattn-train: error:` from the console command, `train.py: error:` from the script."""
    console = tmp_path / "gradattn-train"
    console.write_text("import sys\nfrom keras_gradattn.cli.train import main\nsys.exit(main())\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    for program, expected in (([str(console)], "gradattn-train"), (["-m", "keras_gradattn.cli.train"], "train.py")):
        result = subprocess.run(
            [sys.executable, *program, "--epochs", "0", "--output-dir", str(tmp_path / "run")],
            env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
        )  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.splitlines()[-1].startswith(f"{expected}: error: --epochs must be"), result.stderr
