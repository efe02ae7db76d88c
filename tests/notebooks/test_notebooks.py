"""Every notebook runs top to bottom, and is committed with the outputs of a run.

The execution test runs each notebook in a fresh kernel with CI-sized
parameters injected after its `parameters` cell (as papermill does): tiny
networks, a few hundred digits, one or two epochs. What is tested is that
every cell of the committed notebook works, not what it learns. Like every
backend-independent test (the notebooks call nothing backend-specific, and the
library's own tests cover every backend), they run under one backend only:
scripts/test.sh runs them with the first backend's suite.
"""

import base64
import os
import time

import keras
import nbformat
import pytest

from testing_utils import REPOSITORY
from testing_utils import load_script

pytestmark = pytest.mark.backend_independent

NOTEBOOK_DIR = os.path.join(REPOSITORY, "notebooks")
NOTEBOOKS = sorted(name for name in os.listdir(NOTEBOOK_DIR) if name.endswith(".ipynb"))
# Seconds per notebook. Measured under JAX on a 2-core CPU shared with two
# training runs: 45 to 181 s each (01: 61-90 s, 02: 67-144 s, 03: 45-181 s).
TIMEOUT = 600
# Committed notebooks stay reviewable: figures, not megabytes of them.
MAX_NOTEBOOK_BYTES = 1_000_000

execute_notebooks = load_script("execute_notebooks")

# A ResNet-10 of widths 8-32 and a 16-wide, 2-layer encoder: the same code
# paths as the paper's model at a fraction of the compile and step time.
TINY_BACKBONE = {
    "stage_blocks": (1, 1, 1, 1),
    "stage_widths": (8, 16, 16, 32),
    "stem_width": 8,
}
TINY_ENCODER = {
    "token_dim": 16,
    "num_heads": 2,
    "intermediate_dim": 32,
    "num_layers": 2,
}
SMALL_DATA = {"dataset": "digits", "max_train_samples": 128, "batch_size": 64}
CI_PARAMETERS = {
    "01_quickstart.ipynb": {**SMALL_DATA, "model_overrides": {**TINY_BACKBONE, **TINY_ENCODER}, "epochs": 2},
    "02_gradient_flow.ipynb": {
        **SMALL_DATA, "backbone_overrides": TINY_BACKBONE, "encoder_overrides": TINY_ENCODER,
        "epochs": 2, "log_every_steps": 1, "probe_batches": 1,
    },
    "03_positional_encoding.ipynb": {
        **SMALL_DATA, "backbone_overrides": TINY_BACKBONE, "encoder_overrides": TINY_ENCODER, "epochs": 1,
    },
}  # fmt: skip


def test_every_notebook_has_ci_parameters():
    assert sorted(CI_PARAMETERS) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_parametrised_and_was_run_in_order(name):
    notebook = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code_cells[0].metadata.get("tags", []), (
        "the first code cell must be tagged 'parameters'"
    )
    names = execute_notebooks.parameter_names(notebook)
    assert "keras_backend" in names and "output_dir" in names
    assert not set(CI_PARAMETERS[name]) - set(names)
    assert not any(
        "injected-parameters" in cell.metadata.get("tags", []) for cell in code_cells
    ), "committed outputs must come from the committed parameters"
    counts = [cell.execution_count for cell in code_cells]
    assert counts == list(range(1, len(code_cells) + 1)), (
        f"run top to bottom once; execution counts {counts}"
    )
    errors = [
        output
        for cell in code_cells
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    # Real figures: PNG images rendered by the run, not placeholders.
    images = [
        base64.b64decode(output.data["image/png"])
        for cell in code_cells
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 2, "the committed notebook shows no figures"
    assert all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    size = os.path.getsize(os.path.join(NOTEBOOK_DIR, name))
    assert size < MAX_NOTEBOOK_BYTES, (
        f"{name} is {size / 1e6:.1f} MB: show smaller figures"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path):
    parameters = dict(
        CI_PARAMETERS[name],
        keras_backend=keras.backend.backend(),
        output_dir=str(tmp_path / "run"),
    )
    start = time.perf_counter()
    executed = execute_notebooks.execute_notebook(
        os.path.join(NOTEBOOK_DIR, name),
        parameters,
        timeout=TIMEOUT,
        working_dir=str(tmp_path),
    )
    seconds = time.perf_counter() - start
    print(f"{name} under {keras.backend.backend()}: {seconds:.0f} s")
    images = sum(
        "image/png" in output.get("data", {})
        for cell in executed.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert images >= 2, "the notebook's figures did not render"
