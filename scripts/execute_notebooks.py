#!/usr/bin/env python
"""Executes the notebooks top to bottom, papermill-style, and saves their outputs.

    python scripts/execute_notebooks.py                       # every notebooks/*.ipynb, in place
    python scripts/execute_notebooks.py notebooks/01_quickstart.ipynb -p epochs=3 -p keras_backend='"torch"'

Each notebook has one code cell tagged `parameters`. Values given with `-p
NAME=VALUE` (VALUE a Python literal) are written into a new cell tagged
`injected-parameters` right after it, as papermill does, so the notebook runs
with them and the rest of the notebook is unchanged. Without `-p` the
notebook runs with its committed parameters: that is how the outputs
committed with the notebooks were produced. `papermill` itself runs these
notebooks too (`papermill in.ipynb out.ipynb -p epochs 3`); this script only
avoids the extra dependency.

TensorFlow's C++ start-up lines (printed on stderr before its logging
is set up, whatever TF_CPP_MIN_LOG_LEVEL says) are removed from the
outputs; nothing else is.

The kernel runs in the notebook's folder (relative paths in the notebooks
are relative to it) with this checkout first on PYTHONPATH. A cell error or a
notebook that runs past `--timeout` seconds fails the command (exit 1) and
leaves the notebook file unchanged.
"""

import argparse
import ast
import asyncio
import copy
import os
import re
import sys
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
# Lines TensorFlow's C++ runtime prints on stderr when it loads (for tf.data),
# before its logging is set up, so TF_CPP_MIN_LOG_LEVEL cannot silence them.
STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\..*)$"
)


def parameters_cell_index(notebook):
    """Index of the cell tagged `parameters`; a notebook must have one."""
    for index, cell in enumerate(notebook.cells):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return index
    raise ValueError("the notebook has no cell tagged 'parameters'")


def parameter_names(notebook):
    """Names assigned in the parameters cell, in order."""
    source = notebook.cells[parameters_cell_index(notebook)].source
    return [
        target.id
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    ]


def inject_parameters(notebook, parameters):
    """A copy of `notebook` with `parameters` assigned right after its parameters cell."""
    import nbformat

    notebook = copy.deepcopy(notebook)
    unknown = sorted(set(parameters) - set(parameter_names(notebook)))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown}; the notebook's parameters are {parameter_names(notebook)}"
        )
    notebook.cells = [
        cell
        for cell in notebook.cells
        if INJECTED_TAG not in cell.get("metadata", {}).get("tags", [])
    ]
    if not parameters:
        return notebook
    lines = ["# Injected parameters"] + [
        f"{name} = {value!r}" for name, value in parameters.items()
    ]
    cell = nbformat.v4.new_code_cell(
        "\n".join(lines), metadata={"tags": [INJECTED_TAG]}
    )
    notebook.cells.insert(parameters_cell_index(notebook) + 1, cell)
    return notebook


def drop_startup_noise(notebook):
    """Removes TensorFlow's start-up lines from the stderr outputs of `notebook`."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                lines = output.text.splitlines(keepends=True)
                output.text = "".join(
                    line for line in lines if not STARTUP_NOISE.match(line.rstrip("\n"))
                )
                if not output.text.strip():
                    continue
            kept.append(output)
        cell.outputs = kept
    return notebook


def kernel_environment(extra=None):
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [REPOSITORY, environment.get("PYTHONPATH")])
    )
    # TensorFlow's C++ start-up lines would land in the notebooks' outputs.
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    environment.update(extra or {})
    return environment


def execute_notebook(
    path, parameters=None, timeout=600, working_dir=None, environment=None
):
    """Runs the notebook at `path` with `parameters` injected; returns the executed notebook.

    `timeout` bounds the whole notebook (seconds); `working_dir` defaults to
    the notebook's folder. Raises `nbclient.exceptions.CellExecutionError` on
    a cell error and `TimeoutError` past the timeout (the kernel is shut down
    in both cases).
    """
    import nbclient
    import nbformat

    notebook = inject_parameters(nbformat.read(path, as_version=4), parameters or {})
    working_dir = working_dir or os.path.dirname(os.path.abspath(path))
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": working_dir}},
        record_timing=False,  # no timestamps in the cells' metadata: committed notebooks diff cleanly
    )

    async def run():
        await asyncio.wait_for(
            client.async_execute(env=kernel_environment(environment)), timeout
        )

    try:
        asyncio.run(run())
    except asyncio.TimeoutError:
        raise TimeoutError(f"{path} ran past its {timeout} s limit") from None
    return drop_startup_noise(notebook)


def _parameter(text):
    name, separator, value = text.partition("=")
    if not separator or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a Python literal (quote strings: 'x=\"a\"')"
        ) from None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="execute_notebooks.py",
        description=(
            "Run notebooks top to bottom with their committed parameters (or -p overrides) "
            "and write their outputs back into them."
        ),
    )
    parser.add_argument(
        "notebooks", nargs="*", metavar="NOTEBOOK",
        help="notebooks to run (default: every notebooks/*.ipynb)",
    )  # fmt: skip
    parser.add_argument(
        "-p", "--parameter", action="append", type=_parameter, default=[], metavar="NAME=VALUE",
        help="override a parameter, VALUE a Python literal (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=int, default=1800, help="seconds per notebook (default 1800)"
    )
    parser.add_argument(
        "--output-dir",
        help="write executed copies here instead of overwriting the notebooks",
    )
    return parser


def main(argv=None):
    import nbclient
    import nbformat

    args = build_parser().parse_args(argv)
    paths = args.notebooks or sorted(
        os.path.join(REPOSITORY, "notebooks", name)
        for name in os.listdir(os.path.join(REPOSITORY, "notebooks"))
        if name.endswith(".ipynb")
    )
    failed = []
    for path in paths:
        start = time.perf_counter()
        try:
            notebook = execute_notebook(
                path, dict(args.parameter), timeout=args.timeout
            )
        except (nbclient.exceptions.CellExecutionError, TimeoutError) as error:
            print(
                f"{path}: FAILED after {time.perf_counter() - start:.0f} s\n{error}",
                file=sys.stderr,
            )
            failed.append(path)
            continue
        target = path
        if args.output_dir:
            os.makedirs(args.output_dir, exist_ok=True)
            target = os.path.join(args.output_dir, os.path.basename(path))
        nbformat.write(notebook, target)
        print(f"{target}: executed in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
