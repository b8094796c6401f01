"""The `raftcache` command line (click). Commands live in one module per family."""

from .main import main

__all__ = ["main"]
