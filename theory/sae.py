"""Claims: sae (being written)."""
from .registry import claim  # noqa: F401
