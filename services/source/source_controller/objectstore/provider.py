"""What the Bucket reconciler needs of an object store, whatever the provider: a seam, no I/O here.

Each provider module (:mod:`.s3`, :mod:`.azure`, :mod:`.gcs`) implements :class:`BucketClient` with its own maintained
SDK and maps that SDK's errors to :mod:`.errors` at its edge, with messages that hold no credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from source_controller.objectstore.index import Listed


class BucketClient(Protocol):
    """One bucket (or container) on one endpoint, with the Bucket's credentials."""

    async def exists(self) -> bool:
        """Whether the bucket exists (False only when the store says it does not)."""
        ...

    def list(self, prefix: str) -> AsyncIterator[Listed]:
        """Every object under ``prefix``, etags as Flux writes them in the index."""
        ...

    async def etag(self, key: str) -> str | None:
        """One object's etag (index form), None when there is no such object."""
        ...

    async def download(self, key: str, dest: Path, max_size: int) -> str:
        """Write the object to ``dest`` (created 0600); its etag (index form). ObjectNotFound when it is
        gone; BucketOperationFailed past ``max_size`` bytes, whatever the listing said."""
        ...
