"""The layering of DEVELOPERS.md: protocol <- client <- integrations; server <- protocol only."""

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src"
BANNED = {
    "client": {"trainhub.server", "fastapi", "sqlalchemy", "boto3", "starlette"},
    "protocol": {"trainhub.client", "trainhub.server", "httpx", "fastapi", "sqlalchemy"},
    "server": {"trainhub.client", "trainhub.integrations"},
    "integrations": {"trainhub.server", "fastapi", "sqlalchemy"},
}


def imports_of(path: Path) -> set[str]:
    nodes = list(ast.walk(ast.parse(path.read_text())))
    plain = {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
    return plain | {n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module}


@pytest.mark.parametrize("layer", sorted(BANNED))
def test_layer_imports_nothing_banned(layer: str) -> None:
    for path in (SRC / "trainhub" / layer).rglob("*.py"):
        bad = {
            m for m in imports_of(path) for b in BANNED[layer] if m == b or m.startswith(b + ".")
        }
        assert not bad, f"{path} imports {bad}"


def test_top_level_package_does_not_import_the_server_stack() -> None:
    for path in [SRC / "trainhub" / "__init__.py", *(SRC / "trainhub" / "cli").glob("*.py")]:
        top_level = {
            n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
            for n in ast.parse(path.read_text()).body
            if isinstance(n, ast.Import | ast.ImportFrom)
        }
        assert not {
            m
            for m in top_level
            if m and re.match(r"(fastapi|sqlalchemy|uvicorn|trainhub\.server)", m)
        }, path


def test_server_never_unpickles() -> None:
    """docs/security.md §2.9: the server stores checkpoints as bytes and never loads them."""
    for path in (SRC / "trainhub" / "server").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"\bimport pickle\b|\bpickle\.|torch\.load|import torch", text), path
