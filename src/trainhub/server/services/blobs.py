"""Removing blobs that no row refers to any more, once the transaction that freed them committed."""

import logging
from collections.abc import Iterable

from trainhub.server.storage import Storage, StorageError

logger = logging.getLogger(__name__)


def delete_garbage(storage: Storage, keys: Iterable[str]) -> None:
    """Delete blobs freed by a committed change; a failure is logged, never raised.

    The change is done and answered either way: a blob left behind costs space, not
    correctness (nothing refers to it).
    """
    for key in keys:
        try:
            storage.delete(key)
        except StorageError:
            logger.warning("could not delete the unreferenced blob %s", key, exc_info=True)
