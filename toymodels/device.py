"""Choosing the device: ``auto`` picks CUDA when present, else the CPU."""
from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` (or a ``torch.device``) into a usable device.

    Raises ``ValueError`` for an unknown name or for CUDA on a machine without it.
    """
    if isinstance(device, torch.device):
        dev = device
    else:
        name = "auto" if device is None else str(device)
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if name != "cpu" and not name.startswith("cuda"):
            raise ValueError(f"device must be one of auto, cpu, cuda or cuda:N; got {name!r}")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(f"device must be one of auto, cpu, cuda or cuda:N; got {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(dev)!r} was asked for but CUDA is not available here; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(dev)!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type != "cpu":
        raise ValueError(f"device must be cpu or cuda, got {str(dev)!r}")
    return dev


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def derive_seed(seed: int, *keys: object) -> int:
    """A deterministic 63-bit seed from ``seed`` and any labels (e.g. a chunk index), so
    independent streams never share a seed by accident."""
    import hashlib

    h = hashlib.sha256(repr((int(seed),) + keys).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)
