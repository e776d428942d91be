"""Storage backends behind one protocol."""

from archive.storage.base import Storage, check_key
from archive.storage.fs import FsStorage
from archive.storage.s3 import S3Storage

__all__ = ["FsStorage", "S3Storage", "Storage", "check_key"]
