"""The worker's model cache: files fetched from storage once, loaded models kept in an LRU.

A model file is identified by its sha256 (storage keys change with every version), fetched into
the worker's cache folder through a temp file, checked against its hash, then loaded. At most
`worker_model_cache_size` models stay loaded; the least recently used one is dropped with its
file when another is needed.
"""

import hashlib
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from trainhub.server.storage import Storage

logger = logging.getLogger(__name__)
SUFFIX = {"onnx": ".onnx", "torch": ".pt"}


class ModelFileError(Exception):
    """A model file could not be fetched from storage, or its bytes do not match its hash."""


def fetch(storage: Storage, key: str, sha256: str, target: Path) -> Path:
    """Copy the blob `key` to `target` (through a temp file) unless it is there; check its hash."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
    digest = hashlib.sha256()
    try:
        with temp.open("wb") as out:
            size = storage.size(key)
            if size:
                for chunk in storage.iter_range(key, 0, size - 1):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ModelFileError(f"the stored file {key} does not match its sha256")
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    return target


class ModelCache:
    """Loaded models by (runtime, sha256), least recently used dropped beyond `size`."""

    def __init__(self, storage: Storage, folder: Path, size: int) -> None:
        self.storage = storage
        self.folder = folder
        self.size = size
        self._models: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, runtime: str, blob: dict[str, str]) -> Any:
        """Return the model of `blob` ({"key", "sha256"}) for `runtime` ("onnx" or "torch")."""
        cache_key = (runtime, blob["sha256"])
        with self._lock:  # one load at a time: two threads never load the same file twice
            model = self._models.get(cache_key)
            if model is not None:
                self._models.move_to_end(cache_key)
                return model
            path = fetch(
                self.storage,
                blob["key"],
                blob["sha256"],
                self.folder / f"{blob['sha256']}{SUFFIX[runtime]}",
            )
            model = _load(runtime, path)
            self._models[cache_key] = model
            while len(self._models) > self.size:
                (old_runtime, old_sha), _ = self._models.popitem(last=False)
                (self.folder / f"{old_sha}{SUFFIX[old_runtime]}").unlink(missing_ok=True)
                logger.info("model cache: dropped %s model %s", old_runtime, old_sha[:12])
            logger.info("model cache: loaded %s model %s", runtime, blob["sha256"][:12])
            return model


def _load(runtime: str, path: Path) -> Any:
    if runtime == "onnx":
        from trainhub.worker.onnx_model import OnnxModel

        return OnnxModel(path)
    from trainhub.worker.torch_model import TorchModel

    return TorchModel(path)
