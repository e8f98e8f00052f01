"""Claims: interference (being written)."""
from .registry import claim  # noqa: F401
