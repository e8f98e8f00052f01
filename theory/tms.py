"""Claims: tms (being written)."""
from .registry import claim  # noqa: F401
