"""The layering of DEVELOPERS.md: protocol <- client <- integrations; server <- protocol only."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src"
BANNED = {
    "client": {"trainhub.server", "fastapi", "sqlalchemy", "boto3", "starlette"},
    "protocol": {"trainhub.client", "trainhub.server", "httpx", "fastapi", "sqlalchemy"},
    "server": {"trainhub.client", "trainhub.integrations", "trainhub.worker"},
    "integrations": {"trainhub.server", "fastapi", "sqlalchemy"},
    # the adapters sit on services/: they never import each other, nor SQLAlchemy
    "server/api": {"trainhub.server.web", "trainhub.server.platform", "sqlalchemy"},
    "server/web": {"trainhub.server.api", "trainhub.server.platform", "sqlalchemy"},
    "server/platform": {"trainhub.server.api", "trainhub.server.web", "sqlalchemy"},
    "server/services": {
        "trainhub.server.api",
        "trainhub.server.web",
        "trainhub.server.platform",
        "fastapi",
        "starlette",
    },
    "server/db": {
        "trainhub.server.api",
        "trainhub.server.web",
        "trainhub.server.platform",
        "trainhub.server.services",
        "trainhub.server.records",
        "fastapi",
    },
}
# a transaction is opened in services/ (and db/ itself), never in a route module
TRANSACTION = re.compile(r"\.(read|write)\(\)\s+as\b")


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


@pytest.mark.parametrize("layer", ["server/api", "server/web", "server/platform"])
def test_routes_open_no_transaction(layer: str) -> None:
    for path in (SRC / "trainhub" / layer).rglob("*.py"):
        assert not TRANSACTION.search(path.read_text()), f"{path} opens a database transaction"


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


# what only a worker process may load (docs/decisions/0017-job-queue.md)
WORKER_SIDE = ("torch", "ultralytics", "onnxruntime", "onnx", "cv2", "numpy", "trainhub.worker")


@pytest.mark.parametrize(
    "statement",
    [
        "from trainhub.server.app import create_app",
        "import trainhub.cli.admin, trainhub.cli.embedded, trainhub.cli.worker",
    ],
)
def test_the_server_process_loads_no_worker_module(statement: str) -> None:
    loaded = loaded_modules(statement)
    leaked = sorted(m for m in loaded if m.split(".")[0] in WORKER_SIDE or m in WORKER_SIDE)
    leaked += sorted(m for m in loaded if m.startswith("trainhub.worker"))
    assert not leaked, f"{statement!r} loaded {leaked}"


def test_the_server_process_unpickles_nothing_from_the_queue() -> None:
    """The server reads job results from the queue: they must never go through pickle.loads."""
    code = (
        "import pickle\n"
        "def refuse(*a, **k): raise SystemExit('pickle.loads called')\n"
        "pickle.loads = refuse\n"
        "import tempfile\n"
        "from trainhub.server.settings import Settings\n"
        "from trainhub.server.jobs.queue import create_queue\n"
        "q = create_queue(Settings(data_dir=tempfile.mkdtemp()))\n"
        "q.huey.put_result('t', {'ok': True})\n"
        "assert q.has_result('t') and q.take_result('t') == {'ok': True}\n"
        "q.enqueue_export('e'); assert q.pending_exports() == {'e'}\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def loaded_modules(statement: str) -> set[str]:
    """Return the modules a fresh interpreter has loaded after running `statement`."""
    code = f"{statement}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(done.stdout.split())


CLIENT_SIDE = ("trainhub.client", "trainhub.integrations", "httpx", "tqdm")


@pytest.mark.parametrize(
    "statement",
    [
        "import trainhub.server.app",
        "from trainhub.server.app import create_app",
        "import trainhub.protocol.ids",
        "import trainhub",
    ],
)
def test_importing_the_server_or_the_protocol_loads_no_client_module(statement: str) -> None:
    loaded = loaded_modules(statement)
    leaked = sorted(m for m in loaded if m.startswith(CLIENT_SIDE))
    assert not leaked, f"{statement!r} loaded {leaked}"


def test_the_public_client_names_load_on_first_use() -> None:
    loaded = loaded_modules("from trainhub import HUBTrainingSession, HubClient, ApiError")
    assert {"trainhub.client.session", "trainhub.client.api", "httpx"} <= loaded
