"""Docs move with code: every setting, command and route is documented, every citation exists."""

import os
import re
from pathlib import Path

from typer.main import get_command

from tests.routes import api_endpoints
from trainhub.cli import app as cli_app
from trainhub.server.settings import Settings

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
WEB = ROOT / "src" / "trainhub" / "server" / "web"
# an attribute or CSS url() that points at another origin: https://..., http://..., //host/...
ELSEWHERE = re.compile(r"""(?:\b(?:src|href|action)\s*=\s*|url\()["']?(?:https?:)?//""", re.I)


def test_every_setting_is_described_in_docs_settings() -> None:
    text = (DOCS / "settings.md").read_text()
    for name in Settings.model_fields:
        assert f"`{name}`" in text, f"docs/settings.md does not describe {name}"
        assert f"`TRAINHUB_{name.upper()}`" in text, (
            f"docs/settings.md lacks TRAINHUB_{name.upper()}"
        )


def test_every_cli_command_is_listed_in_docs_cli() -> None:
    text = (DOCS / "cli.md").read_text()
    group = get_command(cli_app)
    commands = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        commands += (
            [f"trainhub {name} {sub}" for sub in subcommands]
            if subcommands
            else [f"trainhub {name}"]
        )
    assert commands
    for command in commands:
        assert f"`{command}" in text, f"docs/cli.md does not list {command!r}"


def test_every_route_is_listed_in_docs_http_api(app) -> None:
    text = (DOCS / "http-api.md").read_text()
    paths = {
        e.path
        for e in api_endpoints(app)
        if e.route.endpoint.__module__.startswith(
            ("trainhub.server.api", "trainhub.server.platform")
        )
    }
    assert len(paths) >= 25
    for path in sorted(paths):
        pattern = re.sub(r"\\\{[^}]+\\\}", r"\\{[^}]+\\}", re.escape(path))
        pattern = pattern.replace(r"\{object_id\}", r"\{[^}]+\}")
        documented = re.search(pattern, text) or path.startswith("/files/")
        assert documented, f"docs/http-api.md does not document {path}"


def test_the_public_api_is_documented_in_docs_client() -> None:
    import trainhub

    text = (DOCS / "client.md").read_text()
    for name in trainhub.__all__:
        assert f"`{name}`" in text, f"docs/client.md does not mention {name}"


# --- citations: every cited document and section exists in this repository -----------------

ROOT = DOCS.parent
CITING = ("src", "tests", "bench", "scripts", "docs", "README.md", "DEVELOPERS.md", "CHANGELOG.md")
TEXT_SUFFIXES = {".py", ".md", ".sh", ".html", ".js", ".css", ".toml", ".yaml", ".yml", ".txt"}
SECTION = r"§\d+(?:\.\d+)*"
# what may stand between the sections of one citation: "§5.3-§5.7, §6 and §16.4", and a line
# break inside a `#` comment
CHAIN = rf"((?:\s*(?:[,/\u2013-]\s*)?(?:(?:and|or)\s+)?(?:#\s+)?{SECTION})*)"
CITATION = re.compile(rf"(?<![\w/.-])(docs/[\w/.-]+?\.md){CHAIN}")
LINK = re.compile(rf"\]\(([\w/.-]+?\.md)(?:#[\w-]*)?\){CHAIN}")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
TEST_REFERENCE = re.compile(
    r"(?<![\w/.-])((?:tests|bench|scripts)/[\w/.-]+?\.(?:py|sh))(?:::(\w+))?"
)
# notes that live outside the repository; what a reader needs is in docs/ (see docs/protocol/)
OUTSIDE = (
    "hub-" + "protocol",
    "security-" + "notes",
    "platform-" + "protocol",
    "shared/" + "docs",
    "style" + ".md",
    "protocol-" + "notes",
)


def citing_files() -> list[Path]:
    """Return the text files whose citations must resolve (this file names the banned notes)."""
    files: list[Path] = []
    for name in CITING:
        path = ROOT / name
        found = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [
            f
            for f in found
            if f.is_file()
            and f.suffix in TEXT_SUFFIXES
            and "__pycache__" not in f.parts
            and f != Path(__file__)
        ]
    assert len(files) > 100
    return files


def sections_of(path: Path) -> set[str]:
    """Return the section numbers of a document's numbered headings ("5", "5.8", ...)."""
    return set(HEADING.findall(path.read_text()))


def check_citation(source: Path, target: Path, chain: str, problems: list[str]) -> None:
    where = source.relative_to(ROOT)
    if not target.is_file():
        problems.append(f"{where} cites {os.path.relpath(target, ROOT)}: no such file")
        return
    for number in re.findall(r"§(\d+(?:\.\d+)*)", chain):
        if number not in sections_of(target):
            problems.append(f"{where} cites {target.relative_to(ROOT)} §{number}: no such section")


def test_every_cited_document_and_section_exists() -> None:
    problems: list[str] = []
    for path in citing_files():
        text = path.read_text()
        claimed: list[tuple[int, int]] = []
        for match in CITATION.finditer(text):
            check_citation(path, ROOT / match[1], match[2], problems)
            claimed.append(match.span(2))
        if path.suffix == ".md":
            for match in LINK.finditer(text):
                check_citation(path, (path.parent / match[1]).resolve(), match[2], problems)
                claimed.append(match.span(2))
        # a bare "§n" refers to the document it is written in, which must have that section
        own = sections_of(path) if path.suffix == ".md" else set()
        for match in re.finditer(SECTION, text):
            if any(start <= match.start() < end for start, end in claimed):
                continue
            if match[0][1:] not in own:
                problems.append(
                    f"{path.relative_to(ROOT)}: {match[0]} names no document; "
                    "write docs/<file>.md §n"
                )
    assert not problems, "\n".join(problems)


def test_every_cited_test_and_script_exists() -> None:
    problems: list[str] = []
    for path in citing_files():
        for match in TEST_REFERENCE.finditer(path.read_text()):
            target = ROOT / match[1]
            if not target.is_file():
                problems.append(f"{path.relative_to(ROOT)} cites {match[1]}: no such file")
            elif match[2] and not re.search(
                rf"^\s*(?:async )?def {match[2]}\(", target.read_text(), re.MULTILINE
            ):
                problems.append(f"{path.relative_to(ROOT)} cites {match[0]}: no such test")
    assert not problems, "\n".join(problems)


def test_nothing_cites_notes_outside_the_repository() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}"
        for path in citing_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(name in line for name in OUTSIDE)
    ]
    assert not problems, "cite docs/ instead:\n" + "\n".join(problems)


def test_the_dashboard_loads_nothing_from_a_cdn_as_docs_dashboard_says() -> None:
    assert "never from a CDN" in (DOCS / "dashboard.md").read_text()
    own = [*(WEB / "templates").glob("*.html"), *(WEB / "static").glob("*.[jc]s*")]
    assert len(own) >= 10
    for path in own:
        found = ELSEWHERE.search(path.read_text())
        assert found is None, f"{path.name} loads from another origin: {found and found.group()}"


def test_a_rendered_page_loads_only_from_its_own_origin(anon) -> None:
    page = anon.get("/login")
    assert page.status_code == 200
    assert re.search(r'<script src="/static/', page.text)
    assert ELSEWHERE.search(page.text) is None


def test_the_docs_promise_nothing_as_coming() -> None:
    for path in [ROOT / "README.md", *DOCS.glob("*.md")]:
        assert "(coming)" not in path.read_text(), f"{path.name} calls something 'coming'"
