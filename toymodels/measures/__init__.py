"""Measurements: pure functions of weights, activations and ground truth (no trainer here).

- :mod:`.metrics` — SAE and toy-model metrics (FVU, L0, MMCS, MCC, loss recovered, ...).
- :mod:`.analysis` — toy-model geometry: feature norms, dimensionality, polytope classes.
- :mod:`.ground_truth` — latents against known features: precision/recall, absorption, splitting.
- :mod:`.linalg` — Haar-random orthogonal matrices.
"""
