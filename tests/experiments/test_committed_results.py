"""The committed results page matches the committed results it is generated from."""

import os

import pytest

from keras_gradattn.experiments import results_markdown
from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent


def test_docs_results_is_regenerated_from_the_committed_results():
    results_root = os.path.join(REPOSITORY, "results")
    expected = results_markdown.results_document(results_root, command="python scripts/reproduce.py --docs-only")
    with open(os.path.join(REPOSITORY, "docs", "results.md")) as file:
        committed = file.read()
    assert committed == expected, "docs/results.md is stale: run `python scripts/reproduce.py --docs-only`"
