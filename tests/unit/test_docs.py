"""The README and `docs/` against the code: nothing undocumented, nothing named that is not.

Each guard works both ways where there are two:

- the README's folder map and the project's top-level folders; `docs/layout.md` and
  every module of the code's folders (a lowercase name in a folder's row is a module);
- `docs/operations.md`'s command table and the `changeflow` parser, and every
  `changeflow <command>` named anywhere in the documents;
- the settings tables (and `.env.example`) and `config/settings.py`'s `Settings`, and
  every `CHANGEFLOW_*` named in the documents or in `.env.example`;
- `docs/operations.md`'s deployments table and `prefect.yaml`;
- every repository path, `module.py` `name` pair and `tests/...::test_name` cited;
- every relative link, with its anchor; the README's length.

Only files are read and modules imported: no server, no Prefect run.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections.abc import Callable
from fnmatch import fnmatch
from functools import cache
from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices

from changeflow.cli import parser
from config.settings import PROJECT_ROOT, Settings

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
DOCUMENTS = [README, *sorted(DOCS.glob("*.md")), PROJECT_ROOT / "examples/tickets/README.md"]
README_MAX_LINES = 160

FENCE = re.compile(r"^ {0,3}```.*?^ {0,3}```[^\n]*$", re.M | re.S)
SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SETTING = re.compile(r"CHANGEFLOW_[A-Z0-9_]+\*?")
COMMAND = re.compile(r"(?:^|(?<=[\s(`])|(?<=bin/))changeflow((?: [a-z][a-z-]*)+)")
TEST_CITED = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
NAME_CITED = re.compile(r"`([\w.-]+(?:/[\w.-]+)+\.py)`\s+`([A-Za-z_]\w*)`")
REPO_PATH = re.compile(r"[\w.-]+(?:/[\w.-]+)*(?:/|\.\w+)")


def rel(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).as_posix()


def prose(text: str) -> str:
    """The text without its fenced code blocks."""
    return FENCE.sub("", text)


def fenced(text: str) -> list[str]:
    """The lines inside fenced code blocks."""
    return [line for block in FENCE.findall(text) for line in block.splitlines()[1:-1]]


def spans(text: str) -> list[str]:
    """Inline code outside fenced blocks, with its line breaks read as spaces."""
    return [" ".join(m[2].split()) for m in SPAN.finditer(prose(text))]


def table(text: str, header: str) -> list[list[str]]:
    """The body rows (cells) of every table whose first header cell is `header`."""
    rows: list[list[str]] = []
    lines = prose(text).splitlines()
    for i, line in enumerate(lines[:-1]):
        cells = cells_of(line)
        if cells and cells[0].lower() == header and set(lines[i + 1]) <= set("|-: "):
            for body in lines[i + 2:]:
                if not body.lstrip().startswith("|"):
                    break
                rows.append(cells_of(body))
    return rows


def cells_of(line: str) -> list[str]:
    line = line.strip()
    if not line.startswith("|"):
        return []
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]


def code_in(cell: str) -> list[str]:
    return [" ".join(m[2].split()) for m in SPAN.finditer(cell)]


@cache
def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@cache
def project_folders() -> frozenset[str]:
    """Top-level folders holding a file git tracks or would track (not ignored)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):  # not a checkout: ask the file system
        return frozenset(d.name for d in PROJECT_ROOT.iterdir() if d.is_dir()
                         and d.name != ".git" and not ignored(d.name + "/")
                         and "*" not in read_or_empty(d / ".gitignore").split())
    return frozenset(p.split("/")[0] for p in listed
                     if "/" in p and (PROJECT_ROOT / p).exists())


def read_or_empty(path: Path) -> str:
    return read(path) if path.is_file() else ""


def ignore_patterns() -> list[str]:
    return [line.strip() for line in read(PROJECT_ROOT / ".gitignore").splitlines()
            if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Whether `.gitignore` leaves `path` (or a folder above it) out."""
    parts = path.rstrip("/").split("/")
    for pattern in ignore_patterns():
        bare = pattern.strip("/")
        if "/" in bare:
            if path == bare or path.startswith(bare + "/"):
                return True
        elif any(fnmatch(part, bare) for part in parts):
            return True
    return False


def folder_map() -> list[str]:
    """The folders the README's map names, without their trailing `/`."""
    return [code_in(row[0])[0].rstrip("/") for row in table(read(README), "folder")]


def test_the_folder_map_names_every_top_level_folder_and_only_those() -> None:
    named = folder_map()
    assert named, "README.md has no table headed | folder |"
    top = {n for n in named if "/" not in n}
    assert not project_folders() - top, "folders missing from README.md's map"
    assert not top - project_folders(), "README.md's map names folders the project has not"
    assert [n for n in named if not (PROJECT_ROOT / n).is_dir()] == []


def test_the_layout_names_every_module_and_only_modules_that_exist() -> None:
    rows = table(read(DOCS / "layout.md"), "folder")
    folders = {code_in(row[0])[0].rstrip("/"): row[1] for row in rows}
    assert not project_folders() - {f.split("/")[0] for f in folders}, \
        "top-level folders missing from docs/layout.md"
    problems = []
    for folder, holds in folders.items():
        if not (PROJECT_ROOT / folder).is_dir():
            problems.append(f"{folder}/ does not exist")
            continue
        named = set(code_in(holds))
        if folder.startswith(("tests", "examples", ".ci", "docs")):
            continue
        for module in sorted((PROJECT_ROOT / folder).glob("*.py")):
            if not module.name.startswith("__") and not {module.stem, module.name} & named:
                problems.append(f"{rel(module)} is not named in its row")
        problems += [f"{folder}/{n.removesuffix('.py')}.py does not exist" for n in sorted(named)
                     if re.fullmatch(r"[a-z_][a-z0-9_]*(?:\.py)?", n)
                     and not (PROJECT_ROOT / folder / f"{n.removesuffix('.py')}.py").is_file()]
    assert problems == []


def cli_commands() -> tuple[set[str], set[str]]:
    """The `changeflow` parser's commands: (leaves, groups such as `changeflow log`)."""
    leaves: set[str] = set()
    groups: set[str] = set()

    def walk(command: argparse.ArgumentParser, words: str) -> None:
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                groups.add(words)
                for name, sub in action.choices.items():
                    walk(sub, f"{words} {name}")
                return
        leaves.add(words)

    walk(parser(), "changeflow")
    return leaves, groups - {"changeflow"}


def command_words(text: str) -> str:
    """`changeflow log verify [--fold]` -> `changeflow log verify`: the words that name it."""
    match = re.match(r"changeflow(?: [a-z][a-z-]*)*", text)
    assert match is not None, f"not a changeflow command: {text}"
    return match[0]


def test_operations_documents_every_changeflow_command_and_only_those() -> None:
    leaves, _ = cli_commands()
    rows = table(read(DOCS / "operations.md"), "command")
    documented = {command_words(code_in(row[0])[0]) for row in rows}
    assert leaves, "the parser has no commands"
    assert sorted(leaves - documented) == [], "commands missing from docs/operations.md"
    assert sorted(documented - leaves) == [], "docs/operations.md documents no such command"


def named_commands(text: str) -> list[str]:
    """Every `changeflow <words>` in inline code or code blocks."""
    code = spans(text) + fenced(text)
    return [" ".join(m[1].split()) for chunk in code for m in COMMAND.finditer(chunk)]


def test_every_changeflow_command_the_documents_name_exists() -> None:
    leaves, groups = cli_commands()
    problems = []
    for doc in DOCUMENTS:
        for words in named_commands(read(doc)):
            command = "changeflow"
            for word in words.split():
                if command in leaves:
                    break  # the rest are its arguments
                if f"{command} {word}" not in leaves | groups:
                    problems.append(f"{rel(doc)}: changeflow {words}")
                    break
                command = f"{command} {word}"
    assert problems == []


def setting_names() -> set[str]:
    """Each setting's environment variable, as pydantic-settings reads it."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names |= {c.upper() for c in alias.choices if isinstance(c, str)}
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def test_every_setting_has_a_row_in_a_settings_table() -> None:
    documented = {name for doc in DOCUMENTS for row in table(read(doc), "setting")
                  for name in SETTING.findall(row[0])}
    assert len(setting_names()) > 20
    assert sorted(setting_names() - documented) == [], "settings no table documents"


def test_env_example_lists_every_setting() -> None:
    listed = set(SETTING.findall(read(PROJECT_ROOT / ".env.example")))
    assert sorted(setting_names() - listed) == [], "settings missing from .env.example"


def test_every_setting_named_exists() -> None:
    known = setting_names()
    problems = []
    for path in [*DOCUMENTS, PROJECT_ROOT / ".env.example"]:
        for name in SETTING.findall(read_or_empty(path)):
            if name.endswith("_*"):  # a family: `CHANGEFLOW_SMTP_*`
                if not any(k.startswith(name[:-1]) for k in known):
                    problems.append(f"{rel(path)}: {name}")
            elif name not in known:
                problems.append(f"{rel(path)}: {name}")
    assert problems == []


def test_operations_lists_every_deployment_in_order_with_its_flow() -> None:
    spec = yaml.safe_load(read(PROJECT_ROOT / "prefect.yaml"))["deployments"]
    rows = table(read(DOCS / "operations.md"), "deployment")
    assert [code_in(row[0])[0] for row in rows] == [d["name"] for d in spec]
    assert [":".join(code_in(row[1])) for row in rows] == [d["entrypoint"] for d in spec]


def test_every_repository_path_cited_exists() -> None:
    folders = project_folders()
    problems = []
    for doc in DOCUMENTS:
        for span in spans(read(doc)):
            if (not REPO_PATH.fullmatch(span) or "/" not in span
                    or span.split("/")[0] not in folders or ignored(span)):
                continue
            if not (PROJECT_ROOT / span).exists():
                problems.append(f"{rel(doc)}: {span}")
    assert problems == []


def defines(path: Path, name: str) -> bool:
    pattern = rf"^\s*(?:async\s+def|def|class)\s+{name}\b|^{name}\s*(?::|=)"
    return re.search(pattern, read(path), re.M) is not None


def unresolved(cited: re.Pattern[str], holds: Callable[[Path, str], bool],
               shown: str) -> tuple[int, list[str]]:
    """How many (module, name) pairs the docs cite with `cited`, and those that do not
    hold (`holds(path, name)` false or no such file), each as `shown` formats it."""
    found, problems = 0, []
    for doc in DOCUMENTS:
        for module, name in cited.findall(read(doc)):
            found += 1
            path = PROJECT_ROOT / module
            if not path.is_file() or not holds(path, name):
                problems.append(f"{rel(doc)}: " + shown.format(module=module, name=name))
    return found, problems


def test_every_function_cited_beside_its_module_is_defined_there() -> None:
    cited, problems = unresolved(NAME_CITED, defines, "{module} {name}")
    assert cited > 50 and problems == []


def test_every_test_cited_exists() -> None:
    cited, problems = unresolved(
        TEST_CITED, lambda path, name: name.startswith("test_") and re.search(
            rf"^\s*(?:async\s+)?def {name}\(", read(path), re.M) is not None,
        "{module}::{name}")
    assert cited > 50 and problems == []


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in prose(read(path)).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            base = anchor = slug(match[1])
            n = 0
            while anchor in found:
                n += 1
                anchor = f"{base}-{n}"
            found.add(anchor)
    return found


def test_every_relative_link_reaches_its_file_and_heading() -> None:
    problems = []
    for doc in DOCUMENTS:
        for target in LINK.findall(prose(read(doc))):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            goal = (doc.parent / path).resolve() if path else doc
            if not goal.exists():
                problems.append(f"{rel(doc)}: {target} (no such file)")
            elif anchor and goal.suffix == ".md" and anchor not in anchors(goal):
                problems.append(f"{rel(doc)}: {target} (no such heading)")
    assert problems == []


def test_the_readme_lists_every_document_in_docs() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve()
              for t in LINK.findall(read(README))}
    assert sorted(rel(d) for d in DOCS.glob("*.md") if d.resolve() not in linked) == []


def test_the_readme_is_read_in_five_minutes() -> None:
    lines = len(read(README).splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


@pytest.mark.parametrize("text, commands", [
    ("`changeflow log verify --fold` and `.venv/bin/changeflow changes`",
     ["log verify", "changes"]),
    ("`CHANGEFLOW_DATABASE_URL=postgresql://changeflow@db/changeflow changeflow migrate`",
     ["migrate"]),
    ("`prefect work-pool create changeflow --type process`, `changeflow-jira-token`", []),
])
def test_commands_are_read_from_code_as_written(text: str, commands: list[str]) -> None:
    assert named_commands(text) == commands
