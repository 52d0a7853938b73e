"""Fixtures of the worker tests: tiny YOLO weights made once, a hub with a worker per module."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exports.support import Hub, run_models, running_hub

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="session")
def detect_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained two-class yolo11n at imgsz 64 whose head answers many varied boxes."""
    scratch = tmp_path_factory.mktemp("weights")
    path = scratch / "detect.pt"
    run_models("weights", scratch, path=str(path), task="detect", imgsz=64, random_head=True)
    return path


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A server and one worker, shared by the tests of a module."""
    with running_hub(tmp_path_factory.mktemp("hub")) as running:
        yield running
