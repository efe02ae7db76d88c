"""The design-space comparison: its rows from run folders, scripts/design_space_report.py, the committed page."""

import importlib.util
import json
import os

import pytest

from keras_gradattn.experiments import design_space
from reproduce_testing import fake_run
from reproduce_testing import write_json
from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent

LAYERS = ["stem/conv", "stage1/block1/conv1", "stage1/block1/conv2", "stage2/block1/shortcut_conv", "predictions"]


def _load_script():
    path = os.path.join(REPOSITORY, "scripts", "design_space_report.py")
    spec = importlib.util.spec_from_file_location("design_space_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _probe(l2_norms_by_batch):
    return {"layers": [{"name": name} for name in LAYERS], "per_batch": {"l2_norm": l2_norms_by_batch}}


def _grid(root):
    """Three models x three seeds; the probe's norms scale with the model."""
    runs = os.path.join(root, "grid", "runs")
    accuracy = {"resnet18": [0.90, 0.91, 0.92], "gradattn_learned_pe": [0.92, 0.91, 0.95],
                "rezero_resnet18": [0.89, 0.90, 0.90]}  # fmt: skip
    # Seed 43 ran on a busier machine: every model twice as slow.
    time_per_epoch = {"resnet18": 2.0, "gradattn_learned_pe": 3.0, "rezero_resnet18": 2.5}
    load = {42: 1.0, 43: 2.0, 44: 1.0}
    for scale, model in enumerate(accuracy, start=1):
        for seed, top1 in zip((42, 43, 44), accuracy[model]):
            folder = os.path.join(runs, "digits", model, f"seed{seed}-tensorflow")
            fake_run(folder, model=model, seed=seed, backend="tensorflow", top1=top1,
                     time_per_epoch=time_per_epoch[model] * load[seed])  # fmt: skip
            write_json(os.path.join(folder, "gradient_probe.json"),
                       _probe([[scale * 1.0, 2.0, 4.0, 8.0, 9.0], [scale * 3.0, 2.0, 2.0, 8.0, 9.0]]))  # fmt: skip
    return runs


def test_stage_norms_average_the_batches_then_the_stage_layers():
    norms = design_space.stage_gradient_norms(_probe([[1.0, 2.0, 4.0, 8.0, 9.0], [3.0, 2.0, 2.0, 6.0, 9.0]]))
    # The head's layers are not a backbone stage; stages without layers are absent.
    assert norms == {"stem": 2.0, "stage1": 2.5, "stage2": 7.0}


def test_rows_pair_every_model_with_both_baselines(tmp_path):
    rows = design_space.comparison_rows(design_space.load_runs(_grid(tmp_path)))
    # The pooled head first (identity, then the learned connections), then GradAttn's.
    assert [row["model"] for row in rows] == ["resnet18", "rezero_resnet18", "gradattn_learned_pe"]
    resnet, rezero, gradattn = rows
    assert (rezero["connection"], rezero["head"]) == ("rezero", "pooled")
    assert (gradattn["connection"], gradattn["head"]) == ("none", "gradattn")
    assert rezero["top1_pct_mean"] == pytest.approx(89.6667, abs=1e-3) and rezero["n"] == 3
    # Paired by seed: rezero - resnet18 = -1, -1, -2 pp; gradattn - resnet18 = +2, 0, +3 pp.
    assert rezero["vs_resnet18_mean_pp"] == pytest.approx(-4 / 3)
    assert (rezero["vs_resnet18_ahead"], rezero["vs_resnet18_behind"], rezero["vs_resnet18_n"]) == (0, 3, 3)
    assert rezero["vs_resnet18_p_value"] == pytest.approx(0.25)  # all signs alike: 2 of 8 patterns
    assert gradattn["vs_resnet18_mean_pp"] == pytest.approx(5 / 3)
    assert rezero["vs_gradattn_learned_pe_mean_pp"] == pytest.approx(-3.0)
    assert resnet["vs_resnet18_mean_pp"] is None and gradattn["vs_gradattn_learned_pe_mean_pp"] is None
    # Paired by seed, the load cancels (unpaired means would give the same
    # here; the next test drops a seed of ResNet-18 to tell them apart).
    assert [row["time_per_epoch_relative"] for row in rows] == pytest.approx([1.0, 1.25, 1.5])
    assert resnet["stem_gradient_norm"] == pytest.approx(2.0) and gradattn["stem_gradient_norm"] == pytest.approx(4.0)
    assert rezero["stage2_gradient_norm"] == pytest.approx(8.0) and rezero["stage3_gradient_norm"] is None

    text = design_space.comparison_markdown(rows)
    assert "| rezero | pooled Dense | `rezero_resnet18` | 42 43 44 (3) | 89.67 ± 0.58 | -1.33 (0/3 of 3, p 0.250) |" in text
    assert "| none | GradAttn encoder | `gradattn_learned_pe` | 1.000 | 1.10 | 4.00e+00 | 2.50e+00 | 8.00e+00 | - | - |" in text


def test_time_ratios_pair_seeds_and_duplicates_are_refused(tmp_path):
    import shutil

    runs = _grid(tmp_path)
    # Without ResNet-18's fast seed 44, an unpaired ratio of means would mix
    # seed 43's busy machine into ResNet-18's time only (3.0 / 3.0 = 1.0 for
    # rezero... and not 1.25); the paired ratio stays each seed's 1.25.
    shutil.rmtree(os.path.join(runs, "digits", "resnet18", "seed44-tensorflow"))
    rows = {row["model"]: row for row in design_space.comparison_rows(design_space.load_runs(runs))}
    assert rows["rezero_resnet18"]["time_per_epoch_relative"] == pytest.approx(1.25)
    assert rows["gradattn_learned_pe"]["time_per_epoch_relative"] == pytest.approx(1.5)

    copy = os.path.join(runs, "digits", "rezero_resnet18", "seed42-tensorflow-again")
    shutil.copytree(os.path.join(runs, "digits", "rezero_resnet18", "seed42-tensorflow"), copy)
    with pytest.raises(ValueError, match="two finished runs of rezero_resnet18 with seed 42") as error:
        design_space.comparison_rows(design_space.load_runs(runs))
    assert "seed42-tensorflow-again" in str(error.value)


@pytest.mark.parametrize("content", ["{not json", '{"layers": []}', '{"layers": [{"name": "stem/conv"}], "per_batch": {"l2_norm": [[1.0, 2.0]]}}'])
def test_a_broken_probe_file_is_named_in_one_line_with_status_2(tmp_path, capsys, content):
    script = _load_script()
    runs = _grid(tmp_path)
    broken = os.path.join(runs, "digits", "rezero_resnet18", "seed43-tensorflow", "gradient_probe.json")
    with open(broken, "w") as file:
        file.write(content)
    docs = tmp_path / "page.md"
    page = "<!-- design_space_report: grid -->\nold\n<!-- end design_space_report -->\n"
    docs.write_text(page)
    with pytest.raises(SystemExit) as stop:
        script.main(["--results-root", str(tmp_path), "--docs", str(docs)])
    assert stop.value.code == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and broken in errors[0] and "gradient-flow probe" in errors[0], errors
    assert docs.read_text() == page and not (tmp_path / "images").exists()


def test_the_script_writes_the_block_and_the_figure_and_checks_them(tmp_path, capsys):
    script = _load_script()
    _grid(tmp_path)
    docs = tmp_path / "docs" / "page.md"
    docs.parent.mkdir()
    docs.write_text("# Page\n\nbefore\n\n<!-- design_space_report: grid -->\nold\n<!-- end design_space_report -->\n\nafter\n")
    # No --experiment: every block of the page.
    arguments = ["--results-root", str(tmp_path), "--docs", str(docs)]
    assert script.main(arguments + ["--check"]) == 1  # the old block is stale
    assert not (tmp_path / "docs" / "images").exists()  # --check writes nothing
    assert script.main(arguments) == 0
    page = docs.read_text()
    assert page.startswith("# Page\n\nbefore\n\n<!-- design_space_report: grid -->\n") and page.endswith("\n\nafter\n")
    assert "old" not in page and "`rezero_resnet18`" in page and "](images/grid.png)" in page
    assert (tmp_path / "docs" / "images" / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert script.main(arguments + ["--check"]) == 0


def test_bad_input_is_one_line_with_status_2_and_leaves_the_page(tmp_path, capsys):
    script = _load_script()
    _grid(tmp_path)
    docs = tmp_path / "page.md"
    docs.write_text("# A page without the markers\n")
    for experiment, message in (
        (["--experiment", "missing"], "no experiment 'missing'"),
        (["--experiment", "grid"], "the page has no block for 'grid'"),
        ([], "has no '<!-- design_space_report: <experiment> -->' block"),
    ):
        with pytest.raises(SystemExit) as stop:
            script.main(experiment + ["--results-root", str(tmp_path), "--docs", str(docs)])
        assert stop.value.code == 2
        errors = capsys.readouterr().err.strip().splitlines()
        assert len(errors) == 1 and message in errors[0], errors
    assert docs.read_text() == "# A page without the markers\n"
    assert not (tmp_path / "images").exists()


def test_the_committed_page_shows_the_committed_runs():
    # Like docs/results.md: regenerate with the script after adding runs.
    assert _load_script().main(["--check"]) == 0, "run python scripts/design_space_report.py"


def test_every_registered_connection_model_has_a_design():
    from keras_gradattn.models import list_models

    designs = {name: design_space.model_design(name) for name in list_models()}
    assert designs["resnet18"] == ("identity", "pooled") and designs["plain_resnet18"] == ("none", "pooled")
    for connection in design_space.CONNECTION_ORDER[2:]:
        assert designs[f"{connection}_resnet18"] == (connection, "pooled")
        assert designs[f"{connection}_gradattn"] == (connection, "gradattn")
    json.dumps(designs)  # plain strings, for the CSV-like tables
