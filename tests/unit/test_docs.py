"""Docs move with code: every setting, CLI command and route is documented."""

import re
from pathlib import Path

from typer.main import get_command

from tests.routes import api_endpoints
from trainhub.cli import app as cli_app
from trainhub.server.settings import Settings

DOCS = Path(__file__).parents[2] / "docs"


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
