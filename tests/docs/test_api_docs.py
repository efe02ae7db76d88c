"""docs/api.md is generated from the package and must not go stale.

`scripts/make_api_docs.py` writes it from the public names of every package
(their `__init__.py`) and a few modules; these tests fail when the committed
file differs from what the script generates now, when a public class or
function is missing from it, or when a new subpackage is not covered.
"""

import importlib
import os
import pkgutil
import re

import pytest

import keras_gradattn

from testing_utils import REPOSITORY
from testing_utils import load_script

pytestmark = pytest.mark.backend_independent

API_DOC = os.path.join(REPOSITORY, "docs", "api.md")
# Command-line modules are documented in docs/cli.md, from their --help.
NOT_IN_API_DOC = {"keras_gradattn.cli"}

make_api_docs = load_script("make_api_docs")


def _committed():
    with open(API_DOC, encoding="utf-8") as file:
        return file.read()


def test_api_reference_is_up_to_date():
    assert _committed() == make_api_docs.generate(), (
        "docs/api.md is stale: run `python scripts/make_api_docs.py` and commit the result"
    )


def _sections(text):
    """`{module name: its section of docs/api.md}`."""
    parts = re.split(r"^## `([\w.]+)`$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_public_class_and_function_is_documented():
    sections = _sections(_committed())
    missing = []
    for module_name, names in make_api_docs.documented_names().items():
        section = sections.get(module_name, "")
        for name in names:
            if not callable(getattr(importlib.import_module(module_name), name)):
                continue
            # Its own entry, or a link to the entry where it was first listed.
            if (
                f"#### `{name}` (" not in section
                and f"- `{name}`: see [" not in section
            ):
                missing.append(f"{module_name}.{name}")
    assert not missing, (
        f"public classes and functions missing from docs/api.md: {missing}"
    )


def test_every_subpackage_is_covered():
    subpackages = {
        info.name
        for info in pkgutil.walk_packages(
            keras_gradattn.__path__, prefix="keras_gradattn."
        )
        if info.ispkg
    }
    uncovered = subpackages - set(make_api_docs.PACKAGES) - NOT_IN_API_DOC
    assert not uncovered, (
        f"add these packages to PACKAGES in scripts/make_api_docs.py: {sorted(uncovered)}"
    )


def test_public_names_come_from_the_package_init():
    # The rule the generator follows, on names everyone uses.
    names = make_api_docs.public_names(keras_gradattn)
    for name in (
        "create_model",
        "list_models",
        "register_model",
        "GradAttnClassifier",
        "ResNetBackbone",
    ):
        assert name in names
    assert "layers" not in names  # a subpackage, documented on its own
    assert not [name for name in names if name.startswith("_")]


def test_source_links_point_into_the_repository():
    # A link outside the repository depends on where the clone lives (and on
    # the Python install), so the committed page would be stale elsewhere.
    links = re.findall(r"^Defined in `([^`]+)`\.$", make_api_docs.generate(), re.MULTILINE)
    assert links
    outside = sorted({link for link in links if not link.startswith("keras_gradattn/")})
    assert not outside, f"source links outside the package: {outside}"
