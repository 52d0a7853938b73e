"""Docs move with code: every setting, CLI command and route is documented."""

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
        if e.route.endpoint.__module__.startswith("trainhub.server.api")
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
