"""Claims: linalg (being written)."""
from .registry import claim  # noqa: F401
