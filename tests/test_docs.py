"""The README and docs/ match the code: links resolve, `rlrec STAGE --flag` names a real flag, named paths exist.

The checkers take a page's text, so the tests at the bottom show each one failing on a drifted page.
"""

import functools
import importlib
import re
from pathlib import Path

import pytest

from rlrec.cli import STAGES

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"(?:^|[\s(])rlrec\s+([a-z][a-z-]*)((?:\s+[^\s|;&#]+)*)")
FLAG = re.compile(r"(?<![\w-])(--[A-Za-z][\w-]*)")
REPO_PATH = re.compile(r"(?<![\w./-])((?:recipes|benchmarks|rlrec|tests|docs|accelerate_configs)/[\w./-]*[\w/])")


def prose_and_code(text: str) -> tuple[list[str], list[str]]:
    """A Markdown page's lines outside fenced blocks, and the lines inside them."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            code.append(line)
        else:
            prose.append(line)
    return prose, code


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, a link's text only, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def anchors(text: str) -> frozenset[str]:
    """The anchors of a page's headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose_and_code(text)[0]:
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def broken_links(page: Path, text: str) -> list[str]:
    """Relative links of `text` (a page at `page`) whose file or heading does not exist."""
    problems = []
    for line in prose_and_code(text)[0]:
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve()
            if file and not path.exists():
                problems.append(f"{page.name}: link to {target}: no file {file}")
            elif anchor and (not file or path.suffix == ".md"):
                if anchor not in anchors(path.read_text() if file else text):
                    problems.append(f"{page.name}: link to {target}: no heading #{anchor} in "
                                    f"{path.name if file else page.name}")
    return problems


def commands(text: str) -> list[tuple[str, list[str]]]:
    """Every `rlrec STAGE ...` written on a page (code blocks, with `\\` continuations, and inline code):
    the stage and the flags given to it."""
    prose, code = prose_and_code(text)
    snippets = [span for line in prose for span in INLINE_CODE.findall(line)]
    joined = "\n".join(code).replace("\\\n", " ")
    snippets += joined.splitlines()
    found = []
    for snippet in snippets:
        for stage, rest in COMMAND.findall(snippet):
            found.append((stage, FLAG.findall(rest.split(" -- ")[0])))
    return found


@functools.cache
def stage_flags(stage: str) -> frozenset[str]:
    parser = importlib.import_module(STAGES[stage][0]).make_parser()
    return frozenset(parser._option_string_actions) | {"--config"}


def unknown_flags(page: str, text: str) -> list[str]:
    problems = []
    for stage, flags in commands(text):
        if stage not in STAGES:
            problems.append(f"{page}: `rlrec {stage}`: no such stage")
            continue
        problems += [f"{page}: `rlrec {stage} {flag}`: no such flag" for flag in flags
                     if flag not in stage_flags(stage)]
    return problems


def missing_paths(page: str, text: str) -> list[str]:
    """Repository paths (recipes/, benchmarks/, rlrec/, ...) named on a page that do not exist; placeholders in
    capitals or angle brackets (`recipes/NAME/STAGE.yaml`) are not paths."""
    problems = []
    for line in text.splitlines():
        for path in REPO_PATH.findall(line):
            if re.search(r"[A-Z]{3,}|<|\*", path) or path.startswith("rlrec/rlrec"):
                continue
            if not (ROOT / path.rstrip("/.")).exists():
                problems.append(f"{page}: {path} does not exist")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    assert broken_links(page, page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_written_commands_use_real_flags(page):
    assert unknown_flags(page.name, page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(page):
    assert missing_paths(page.name, page.read_text()) == []


def test_the_pages_are_found():
    names = {p.name for p in PAGES}
    assert {"README.md", "results.md", "experiments.md", "rewards.md", "recipes.md", "design.md"} <= names
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_the_readme_command_examples_are_read():
    found = dict(commands((ROOT / "README.md").read_text()))
    assert "--config" in found["prepare"] and "--output_dir" in found["prepare"]


DRIFTED = """# A page

See [the stages](#stages), [setup](#set-up) and [a page that moved](docs/gone.md).

## Set-up

```bash
rlrec sft --config recipes/ml-100k/sft.yaml \\
    --num_train_epochs 1 --valid_every_epoch 1
```

Run `rlrec evaluate --model_path m --no_such_flag 1`, `rlrec evalute` and `python benchmarks/gone.py`;
copy `recipes/ml-100k/missing.yaml` or `recipes/NAME/STAGE.yaml`.
"""


def test_the_checkers_catch_a_drifted_page():
    page = ROOT / "docs" / "drifted.md"
    assert broken_links(page, DRIFTED) == [
        "drifted.md: link to #stages: no heading #stages in drifted.md",
        "drifted.md: link to docs/gone.md: no file docs/gone.md",
    ]
    assert unknown_flags("drifted.md", DRIFTED) == [
        "drifted.md: `rlrec evaluate --no_such_flag`: no such flag",
        "drifted.md: `rlrec evalute`: no such stage",
        "drifted.md: `rlrec sft --valid_every_epoch`: no such flag",
    ]
    assert missing_paths("drifted.md", DRIFTED) == [
        "drifted.md: docs/gone.md does not exist",
        "drifted.md: benchmarks/gone.py does not exist",
        "drifted.md: recipes/ml-100k/missing.yaml does not exist",
    ]
