"""The repository cites only files it holds and speaks of the project alone.

A reader of a clone has nothing but the clone: every page, docstring or
comment that points at a file must point at one that is there (and at a
section that is there), and the prose must describe the project, its runs and
its machines, not the circumstances in which it was written.
"""

import json
import os
import re
import subprocess

import pytest

from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent

# Folders that are never part of the repository's content (see .gitignore),
# for a copy of the tree without git.
UNTRACKED_FOLDERS = {".git", ".venv", "runs", "build", "dist", "__pycache__", ".pytest_cache", ".ipynb_checkpoints"}

# A file the project was once specified from; it is not in the repository, so
# nothing may cite it. Split so that this test does not cite it either.
UNAVAILABLE_FILES = ("GRADATTN_" + "REFERENCE",)

MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)\)")
# A docs page named as a repository path, e.g. in a docstring: docs/paper.md#parameter-counts.
DOCS_PATH = re.compile(r"(?<![\w./-])(docs/[\w./-]*\w\.md)(?:#([\w-]+))?")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
# Talk of work sessions (a determiner before the word); technical sessions
# ("clear_session", a TensorFlow one) do not match.
SESSION_WORDING = re.compile(
    r"\b(?:this|that|the|a|an|our|previous|earlier|last|next|current|another|same|each|one)"
    r"\s+sessions?\b",
    re.IGNORECASE,
)


def tracked_files():
    """Repository-relative paths of the files under version control."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPOSITORY, capture_output=True, text=True, check=True
        ).stdout
        return sorted(path for path in listed.split("\0") if path and os.path.isfile(os.path.join(REPOSITORY, path)))
    except (OSError, subprocess.CalledProcessError):
        paths = []
        for folder, subfolders, files in os.walk(REPOSITORY):
            subfolders[:] = [
                name for name in subfolders if name not in UNTRACKED_FOLDERS and not name.endswith(".egg-info")
            ]
            paths += [os.path.relpath(os.path.join(folder, name), REPOSITORY) for name in files]
        return sorted(paths)


def read_text(path):
    """The file's text, or None for a binary file."""
    try:
        with open(os.path.join(REPOSITORY, path), encoding="utf-8") as file:
            return file.read()
    except UnicodeDecodeError:
        return None


def text_files():
    return [(path, text) for path in tracked_files() if (text := read_text(path)) is not None]


def prose(path, text):
    """The human-written text of a file: a notebook's markdown cells, else the whole file."""
    if not path.endswith(".ipynb"):
        return text
    cells = json.loads(text)["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown):
    """Every anchor of a markdown text: its headings' (code blocks skipped; repeats numbered as
    GitHub does) and its explicit `<a id="...">`."""
    found, seen, in_code = set(HTML_ANCHOR.findall(markdown)), {}, False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        match = None if in_code else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problem(source, target, anchor):
    """Why `target#anchor`, cited from `source` (both repository-relative), does not resolve; None when it does."""
    full = os.path.join(REPOSITORY, target)
    if not os.path.exists(full):
        return f"{target} does not exist"
    if anchor and target.endswith(".md") and anchor not in anchors(read_text(target)):
        return f"{target} has no section #{anchor}"
    return None


def line_of(text, index):
    return text.count("\n", 0, index) + 1


def test_nothing_cites_a_file_the_repository_does_not_hold():
    problems = [
        f"{path}:{line_of(text, match.start())}: cites {name}.md, which is not in the repository (cite docs/paper.md)"
        for path, text in text_files()
        for name in UNAVAILABLE_FILES
        for match in re.finditer(re.escape(name), text)
    ]
    assert not problems, "\n".join(problems)


def test_markdown_links_to_local_files_resolve():
    problems = []
    for path, text in text_files():
        if not path.endswith((".md", ".ipynb")):
            continue
        page = prose(path, text)
        for match in MARKDOWN_LINK.finditer(page):
            link = match.group(1)
            if re.match(r"[a-zA-Z][\w+.-]*:", link):  # http:, https:, mailto:
                continue
            target, _, anchor = link.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
            problem = link_problem(path, target, anchor)
            if problem:
                problems.append(f"{path}:{line_of(page, match.start())}: link ({link}): {problem}")
    assert not problems, "\n".join(problems)


def test_cited_docs_pages_and_sections_exist():
    problems = []
    for path, text in text_files():
        for match in DOCS_PATH.finditer(text):
            problem = link_problem(path, match.group(1), match.group(2))
            if problem:
                problems.append(f"{path}:{line_of(text, match.start())}: {match.group(0)}: {problem}")
    assert not problems, "\n".join(problems)


def is_documentation(path):
    return path == "README.md" or (
        path.startswith(("docs/", "results/", "notebooks/")) and path.endswith((".md", ".txt", ".ipynb"))
    )


def test_documentation_speaks_of_the_project_not_of_work_sessions():
    problems = []
    for path, text in text_files():
        if not is_documentation(path):
            continue
        page = prose(path, text)
        for match in SESSION_WORDING.finditer(page):
            problems.append(f"{path}:{line_of(page, match.start())}: {match.group(0)!r}")
    assert not problems, (
        "Say what ran where (the project, its runs, its machines), not which work session did it:\n"
        + "\n".join(problems)
    )


@pytest.mark.parametrize(
    "heading, expected",
    [
        ("Results the paper reports", "results-the-paper-reports"),
        ("The reference's defects", "the-references-defects"),
        ("FLOPs: what the ratio targets can reach", "flops-what-the-ratio-targets-can-reach"),
        (
            "Training, per backend: `results/benchmarks/models_cpu.md`",
            "training-per-backend-resultsbenchmarksmodels_cpumd",
        ),
        ("Test accuracy (mean ± std over seeds)", "test-accuracy-mean--std-over-seeds"),
    ],
)
def test_slug_follows_github(heading, expected):
    assert slug(heading) == expected


def test_the_checks_catch_what_they_are_for():
    # The word is split so that this file does not use the wording it forbids.
    word = "sess" + "ion"
    assert SESSION_WORDING.search(f"tens of minutes a run on a GPU; this {word} had none")
    assert SESSION_WORDING.search(f"The {word}'s GPU time ran out")
    assert SESSION_WORDING.search(f"## GPU (NVIDIA H100; a previous {word})")
    assert not SESSION_WORDING.search(f"keras.backend.clear_{word}() between models; a TensorFlow {word}")
    assert anchors("# Title\n```bash\n# not a heading\n```\n## Part\n## Part\n") == {"title", "part", "part-1"}
    assert anchors('<a id="keras_gradattn-models"></a>\n') == {"keras_gradattn-models"}
    assert link_problem("README.md", "docs/paper.md", "no-such-section")
    assert link_problem("README.md", "docs/" + "no_such_page.md", "")  # split: not a citation of its own
