"""Storage backends behind one protocol."""

from archive.storage.base import Storage, check_key
from archive.storage.fs import FsStorage

__all__ = ["FsStorage", "Storage", "check_key"]
