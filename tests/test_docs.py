"""The contract pages are tested against the code: every CLI command, option and
configuration variable is documented in docs/cli.md, and no page cites a file
outside the repository."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel

from tutorscore.cli import app
from tutorscore.config import RulesConfig, Settings

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = ROOT / "docs" / "cli.md"
SECTION = re.compile(r"^### `tutorscore ([a-z][a-z -]*)`$", re.MULTILINE)


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every leaf command of the Typer app as ("model train", command)."""
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from _commands(sub, (*path, name))
    elif path:
        yield " ".join(path), command


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _sections() -> dict[str, str]:
    """docs/cli.md cut at its `### tutorscore …` headings: command -> its text."""
    text = CLI_DOC.read_text()
    heads = list(SECTION.finditer(text))
    out: dict[str, str] = {}
    for head, nxt in zip(heads, [*heads[1:], None], strict=True):
        end = nxt.start() if nxt else len(text)
        out[head.group(1)] = text[head.end() : end].split("\n## ", 1)[0]
    return out


def _names(command: Any) -> list[str]:
    """The names a user types: option strings and, upper-cased, argument names."""
    names: list[str] = []
    for param in command.params:
        if param.param_type_name == "option":
            if not param.hidden:
                names += [*param.opts, *param.secondary_opts]
        elif param.param_type_name == "argument":
            names.append(param.name.upper())
    return names


def test_the_app_has_the_commands_of_the_contract() -> None:
    # the walk itself works: a broken walk would make the tests below pass vacuously
    assert {"init", "seed", "import", "tutors", "users create", "model train"} <= set(COMMANDS)


def test_every_command_has_a_section_in_cli_md() -> None:
    missing = sorted(set(COMMANDS) - set(_sections()))
    assert not missing, f"docs/cli.md has no '### `tutorscore …`' section for: {missing}"


def test_every_section_of_cli_md_is_a_command() -> None:
    stale = sorted(set(_sections()) - set(COMMANDS))
    assert not stale, f"docs/cli.md documents commands that do not exist: {stale}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_and_argument_is_documented_in_its_section(name: str) -> None:
    section = _sections().get(name, "")
    missing = [
        n
        for n in _names(COMMANDS[name])
        if not re.search(rf"(?<=[`/]){re.escape(n)}(?![\w-])", section)
    ]
    assert not missing, f"docs/cli.md, `tutorscore {name}`: not documented: {missing}"


def _environment_names() -> set[str]:
    """Settings' variables, and every TUTORSCORE_* name the package reads."""
    names = {field.alias for field in Settings.model_fields.values() if field.alias}
    for path in (ROOT / "src" / "tutorscore").rglob("*.py"):
        names |= set(re.findall(r"\"(TUTORSCORE_[A-Z0-9_]+)\"", path.read_text()))
    return names


def test_every_environment_variable_is_documented() -> None:
    names = _environment_names()
    assert {"DATABASE_URL", "TUTORSCORE_CONFIG", "TUTORSCORE_LLM_BASE_URL"} <= names
    doc = CLI_DOC.read_text()
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, f"docs/cli.md 'Configuration' does not name: {missing}"


def _config_keys(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str]]:
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _config_keys(kind, f"{prefix}.{name}" if prefix else name)
        elif prefix:  # top-level non-model fields (the playbook dict) are not threshold keys
            yield prefix, name


def test_every_key_of_the_toml_file_is_documented() -> None:
    """The keys a TOML override (or TUTORSCORE_<SECTION>__<KEY>) can set, by section."""
    doc = CLI_DOC.read_text()
    tables = dict(re.findall(r"^\| `\[([a-z_.]+)\]` \| ([^|]+) \|", doc, re.MULTILINE))
    keys = list(_config_keys(RulesConfig, ""))
    assert ("thresholds", "high_rescheduler_rate") in keys
    missing = [f"[{s}] {k}" for s, k in keys if f"`{k}`" not in tables.get(s, "")]
    assert not missing, f"docs/cli.md 'The TOML file' does not list: {missing}"


def test_docs_cite_no_file_outside_the_repository() -> None:
    """The contract lives in docs/; nothing points at a spec the clone does not have."""
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    cited = re.compile(r"\.\./shared|shared/spec|\b(?:RULES|DATA_FORMAT|CLI|REQUIREMENTS)\.md")
    offending = [
        f"{page.relative_to(ROOT)}:{number}"
        for page in pages
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if cited.search(line)
    ]
    assert not offending, f"cites a file that is not in the repository: {offending}"


def test_relative_links_in_docs_resolve() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, f"links to missing files: {broken}"
