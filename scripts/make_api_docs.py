#!/usr/bin/env python
"""Writes docs/api.md, the API reference, from the package's public names.

    python scripts/make_api_docs.py            # rewrite docs/api.md
    python scripts/make_api_docs.py --check    # exit 1 if docs/api.md is stale

The public names of a package are its `__all__` where it defines one, else
every name its `__init__.py` binds that does not start with an underscore
and is not a submodule (`from keras_gradattn.models import create_model`
makes `create_model` public). For the documented modules below (not
packages) they are the classes and functions defined in the module itself.
Each class and function gets its signature and the first paragraph of its
docstring, each class its own public methods; each object is described once,
where it is first listed, and linked from the other places that export it.
tests/docs/test_api_docs.py fails when docs/api.md differs from this
script's output, or when a public name is missing from it.
"""

import argparse
import importlib
import inspect
import os
import re
import sys
import types

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(REPOSITORY, "docs", "api.md")

# Packages, then the modules whose contents are used by name in the docs and
# notebooks (`metrics.classification_metrics`, `figures.compare_heat_maps`...).
PACKAGES = (
    "keras_gradattn",
    "keras_gradattn.models",
    "keras_gradattn.layers",
    "keras_gradattn.data",
    "keras_gradattn.training",
    "keras_gradattn.callbacks",
    "keras_gradattn.analysis",
    "keras_gradattn.experiments",
    "keras_gradattn.benchmarks",
    "keras_gradattn.backend",
    "keras_gradattn.utils",
)
MODULES = (
    "keras_gradattn.training.metrics",
    "keras_gradattn.training.protocol",
    "keras_gradattn.training.plots",
    "keras_gradattn.analysis.runs",
    "keras_gradattn.analysis.figures",
    "keras_gradattn.analysis.gradient_report",
    "keras_gradattn.experiments.paper",
)
# Keras hooks every layer and model overrides; their meaning is Keras'.
KERAS_HOOKS = {
    "build",
    "call",
    "compute_output_shape",
    "compute_output_spec",
    "get_config",
    "from_config",
    "get_build_config",
    "build_from_config",
    "get_compile_config",
    "compile_from_config",
    "save_own_variables",
    "load_own_variables",
}


def _is_package(module):
    return hasattr(module, "__path__")


def public_names(module):
    """The public names of a package or documented module, in source order."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    names = [
        name for name, value in vars(module).items() if _is_public(module, name, value)
    ]
    # Submodules are bound when first imported, anywhere: list them last, in
    # MODULES order, so that import order never changes the page.
    submodules = [
        name for name in names if isinstance(getattr(module, name), types.ModuleType)
    ]
    submodules.sort(key=lambda name: MODULES.index(getattr(module, name).__name__))
    return [name for name in names if name not in submodules] + submodules


def _is_public(module, name, value):
    if name.startswith("_"):
        return False
    if isinstance(value, types.ModuleType):
        # A documented module that a package imports by name (`from
        # keras_gradattn.training import metrics`); subpackages have sections.
        return (
            _is_package(module)
            and value.__name__.startswith(module.__name__ + ".")
            and value.__name__ in MODULES
        )
    defined_in = getattr(value, "__module__", None)
    if _is_package(module):
        # Constants have no `__module__`: public when the package binds them.
        return defined_in is None or defined_in.startswith("keras_gradattn")
    if inspect.isclass(value) or inspect.isfunction(value):
        return defined_in == module.__name__
    return not callable(value) and name.isupper()


def documented_names():
    """`{module name: [public names]}` for every documented package and module."""
    # Import everything first: importing a module binds it in its package,
    # and the result must not depend on what the caller imported before.
    for name in PACKAGES + MODULES:
        importlib.import_module(name)
    return {
        name: public_names(importlib.import_module(name)) for name in PACKAGES + MODULES
    }


def _first_paragraph(obj):
    doc = inspect.getdoc(obj) or ""
    paragraph = doc.strip().split("\n\n")[0].strip()
    return " ".join(line.strip() for line in paragraph.splitlines())


def _clean(text):
    # Object reprs with memory addresses would make the file differ per run.
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _signature(obj, name):
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    if inspect.isclass(obj):
        parameters = [p for p in signature.parameters.values() if p.name != "self"]
        signature = signature.replace(parameters=parameters)
    return _clean(f"{name}{signature}")


def _anchor(qualified):
    return qualified.replace(".", "-").lower()


def _kind(obj):
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return "exception"
        return "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    if isinstance(obj, types.ModuleType):
        return "module"
    return "constant"


def _methods(cls):
    for name, value in vars(cls).items():
        # Keras hooks and callback events (`on_epoch_end`) mean what Keras says.
        if name.startswith(("_", "on_")) or name in KERAS_HOOKS:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            if value.__doc__:
                yield name, None, _first_paragraph(value)
            continue
        # Only the class's own docstrings: an inherited one describes the base.
        if inspect.isfunction(value) and value.__doc__:
            signature = inspect.signature(value)
            parameters = [
                p
                for p in signature.parameters.values()
                if p.name not in ("self", "cls")
            ]
            yield (
                name,
                _clean(f"{name}{signature.replace(parameters=parameters)}"),
                _first_paragraph(value),
            )


def _source_file(obj):
    # Decorators such as `contextlib.contextmanager` hide the function's own
    # file behind their wrapper's; unwrap so the link points into the package.
    try:
        path = inspect.getsourcefile(inspect.unwrap(obj))
    except TypeError:
        return None
    if not path:
        return None
    relative = os.path.relpath(path, REPOSITORY)
    # A file outside the repository would give a path that depends on where
    # the clone lives, and the committed page would go stale on every machine.
    if relative.startswith(os.pardir):
        return None
    return relative.replace(os.sep, "/")


def _entry(module_name, name, obj, documented):
    qualified = f"{module_name}.{name}"
    kind = _kind(obj)
    key = id(obj) if kind != "constant" else qualified
    if kind == "module":
        return [
            f"- `{name}`: the module [`{obj.__name__}`](#{_anchor(obj.__name__)})",
            "",
        ]
    if key in documented:
        target = documented[key]
        return [f"- `{name}`: see [`{target}`](#{_anchor(target)})", ""]
    documented[key] = qualified
    lines = [f'<a id="{_anchor(qualified)}"></a>', ""]
    if kind == "constant":
        lines += [
            f"#### `{name}` (constant)",
            "",
            f"`{name} = {_clean(repr(obj))}`",
            "",
        ]
        return lines
    lines += [
        f"#### `{name}` ({kind})",
        "",
        "```python",
        _signature(obj, name),
        "```",
        "",
    ]
    summary = _first_paragraph(obj)
    if summary:
        lines += [summary, ""]
    source = _source_file(obj)
    if source:
        lines += [f"Defined in `{source}`.", ""]
    if inspect.isclass(obj):
        methods = list(_methods(obj))
        if methods:
            lines += ["Methods and properties:", ""]
            for method, signature, text in methods:
                label = f"`{signature}`" if signature else f"`{method}` (property)"
                lines.append(f"- {label}: {text}" if text else f"- {label}")
            lines.append("")
    return lines


def generate():
    """The text of docs/api.md."""
    import keras_gradattn  # noqa: F401  (selects the backend before Keras loads)

    lines = [
        "# API reference",
        "",
        (
            "<!-- Generated by scripts/make_api_docs.py; do not edit by hand. "
            "tests/docs/test_api_docs.py fails when it is stale. -->"
        ),
        "",
        (
            "Every public class and function of `keras_gradattn`, by package: the signature and the first "
            "paragraph of the docstring (`help(obj)` has the rest: arguments, examples). Public means listed "
            "in a package's `__init__.py`; a few modules used by name in the notebooks and docs follow the "
            "packages. Regenerate with `python scripts/make_api_docs.py` after changing the API."
        ),
        "",
        "Contents: "
        + ", ".join(f"[`{name}`](#{_anchor(name)})" for name in PACKAGES + MODULES),
        "",
    ]
    documented = {}
    for module_name, names in documented_names().items():
        module = importlib.import_module(module_name)
        lines += [f'<a id="{_anchor(module_name)}"></a>', "", f"## `{module_name}`", ""]
        summary = _first_paragraph(module)
        if summary:
            lines += [summary, ""]
        if not names:
            lines += ["No public names.", ""]
        for name in names:
            lines += _entry(module_name, name, getattr(module, name), documented)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Write docs/api.md from the package's public names."
    )
    parser.add_argument(
        "--output", default=DEFAULT_OUTPUT, help="file to write (default: docs/api.md)"
    )
    parser.add_argument(
        "--check", action="store_true", help="only check that the file is up to date"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, REPOSITORY)
    text = generate()
    from keras_gradattn.utils.io import write_or_check_generated

    return write_or_check_generated(args.output, text, args.check, "python scripts/make_api_docs.py")


if __name__ == "__main__":
    sys.exit(main())
