"""Every ```python example in README.md and docs/*.md runs.

The runnable blocks of one page run in order in one fresh Python process
(they share a namespace, like a notebook: a later block may use what an
earlier one defined), in a temporary working directory, under the current
KERAS_BACKEND. A block that is intentionally not runnable (it needs a dataset
download, a trained model or a long run) is marked, and is reported here as
skipped rather than silently ignored:

    ```python no-run            (the info string)

or an HTML comment on the line right before the fence (invisible on GitHub):

    <!-- no-run: needs FashionMNIST -->
    ```python

docs/api.md and docs/cli.md are generated; their blocks are signatures and
--help texts, checked by test_api_docs.py and test_cli_docs.py.
"""

import glob
import os
import re
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.backend_independent

REPOSITORY = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
GENERATED = {"docs/api.md", "docs/cli.md"}
PAGE_TIMEOUT = 600
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
NO_RUN_COMMENT = re.compile(r"^\s*<!--\s*no-run\b(?P<reason>.*?)-->\s*$")


def code_blocks(text):
    """`(line, info, source, no_run_reason)` for every fenced block of `text`.

    `line` is the 1-based line of the opening fence; `no_run_reason` is `None`
    for a runnable block.
    """
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, info, start = match["fence"], match["info"].strip(), index
        body = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        reason = None
        words = info.split()
        if "no-run" in words:
            reason = "marked `no-run` in the info string"
        previous = start - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        comment = NO_RUN_COMMENT.match(lines[previous]) if previous >= 0 else None
        if comment:
            reason = comment["reason"].strip(" :-") or "marked <!-- no-run -->"
        source = textwrap.dedent("\n".join(body))
        blocks.append((start + 1, words[0] if words else "", source, reason))
    return blocks


def python_blocks(path):
    with open(path, encoding="utf-8") as file:
        return [
            block
            for block in code_blocks(file.read())
            if block[1] in ("python", "py", "python3")
        ]


def _pages():
    paths = [os.path.join(REPOSITORY, "README.md")] + sorted(
        glob.glob(os.path.join(REPOSITORY, "docs", "*.md"))
    )
    return [
        os.path.relpath(path, REPOSITORY).replace(os.sep, "/")
        for path in paths
        if os.path.relpath(path, REPOSITORY).replace(os.sep, "/") not in GENERATED
    ]


PAGES = _pages()
RUNNABLE = [
    page
    for page in PAGES
    if any(block[3] is None for block in python_blocks(os.path.join(REPOSITORY, page)))
]
MARKED = [
    (page, line, reason)
    for page in PAGES
    for line, _, _, reason in python_blocks(os.path.join(REPOSITORY, page))
    if reason is not None
]

# Runs the blocks given as (label, source) pairs in one namespace; stops at the
# first failure, naming the block.
RUNNER = """
import json, sys, traceback
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for label, source in blocks:
    print(f"--- {label}", flush=True)
    try:
        exec(compile(source, label, "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        print(f"FAILED: {label}", file=sys.stderr, flush=True)
        sys.exit(1)
"""


@pytest.mark.parametrize("page", RUNNABLE)
def test_examples_run(page, tmp_path):
    import json

    blocks = [
        (f"{page}:{line}", source)
        for line, _, source, reason in python_blocks(os.path.join(REPOSITORY, page))
        if reason is None
    ]
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [REPOSITORY, environment.get("PYTHONPATH")])
    )
    environment.update(MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(blocks), capture_output=True, text=True,
        cwd=tmp_path, env=environment, timeout=PAGE_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"a code example of {page} no longer runs:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    )


@pytest.mark.parametrize(
    "page, line, reason", MARKED, ids=[f"{page}:{line}" for page, line, _ in MARKED]
)
def test_marked_examples_are_skipped(page, line, reason):
    pytest.skip(f"{page}:{line} is not run: {reason}")


def test_pages_have_runnable_examples():
    # The test must not pass by finding nothing.
    assert {"docs/architecture.md", "docs/extending.md", "docs/tensorboard.md"} <= set(
        RUNNABLE
    )


def test_marker_conventions():
    text = textwrap.dedent(
        """\
        ```python
        a = 1
        ```
        ```python no-run
        b = 2
        ```
        <!-- no-run: needs a download -->

        ```python
        c = 3
        ```
            ```py
            d = 4
            ```
        ```bash
        ls
        ```
        """
    )
    blocks = code_blocks(text)
    assert [(info, source, reason) for _, info, source, reason in blocks] == [
        ("python", "a = 1", None),
        ("python", "b = 2", "marked `no-run` in the info string"),
        ("python", "c = 3", "needs a download"),
        ("py", "d = 4", None),
        ("bash", "ls", None),
    ]
