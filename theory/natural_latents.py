"""Claims: natural_latents (being written)."""
from .registry import claim  # noqa: F401
