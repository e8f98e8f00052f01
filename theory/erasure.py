"""Claims: erasure (being written)."""
from .registry import claim  # noqa: F401
