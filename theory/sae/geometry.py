"""Decoder geometry vs random directions, gated vs rescaled SAEs, bound dictionaries (being written)."""
