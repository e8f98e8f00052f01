"""SAELens (sae-lens 6.x) files out and in: one instance of a batched SAE as the folder
``sae_lens.SAE.load_from_disk`` reads, and such a folder back as one of our SAEs.

A SAELens SAE folder holds ``cfg.json`` (``architecture``, ``d_in``, ``d_sae``, ``dtype``,
``device``, ``apply_b_dec_to_input``, ``normalize_activations``, ``reshape_activations``,
``metadata`` with ``sae_lens_version`` >= 6 so no pre-6 renaming applies, and ``k`` for
topk) and ``sae_weights.safetensors`` with W_enc (d_in, d_sae), W_dec (d_sae, d_in),
b_enc (d_sae,), b_dec (d_in,), plus threshold (d_sae,) for jumprelu and b_gate, b_mag,
r_mag (d_sae,) for gated (which has no b_enc). Every SAELens encoder subtracts b_dec from
the input first (``apply_b_dec_to_input = true``), as ours do, and decodes f W_dec + b_dec.

How our architectures map (inference is the same function of x; training-only parts — the
L1 weighted by decoder norms, aux-k, STE bandwidth, threshold EMA — are not part of the
format and are dropped):

=========== =========== ===============================================================
ours        SAELens     the same outputs because
=========== =========== ===============================================================
relu        standard    f = ReLU((x − b_dec) W_enc + b_enc) in both
topk        topk        TopK of the pre-activations, then ReLU, in both (k = our k;
                        ``rescale_acts_by_decoder_norm`` false: our rows are unit norm
                        anyway)
batchtopk   jumprelu    at inference ours fires where ReLU(π) > θ, one θ for all latents;
                        SAELens saves BatchTopK as JumpReLU with threshold θ·1 itself
matryoshka  jumprelu    the same inference rule as batchtopk
jumprelu    jumprelu    f = π·1[π > θ], θ = exp(log_threshold), in both (θ > 0)
gated       gated       b_gate = our b_enc; π_mag = (x − b_dec)(W_enc ⊙ e^{r_mag}) + b_mag
rescaled    standard    e^{r}·ReLU(h + b) = ReLU(h e^{r} + b e^{r}): W_enc and b_enc scaled
bound       standard    a ReLU SAE whose decoder is [W_half; W_half R_map]: the decoder is
                        written out (the tie is lost on import)
=========== =========== ===============================================================

:func:`from_saelens` loads ``standard`` as relu, ``topk``, ``jumprelu`` and ``gated`` as
themselves (one instance; a jumprelu threshold of 0 cannot be a log-threshold and is
refused). Other SAELens architectures are refused with one line.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .config import SAEConfig
from .registry import ARCHITECTURES

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SAELENS_VERSION = "6.0.0"
"""The sae-lens version written into ``metadata`` (>= 6: the 6.x config layout)."""
EXPORTABLE = ("relu", "topk", "batchtopk", "matryoshka", "jumprelu", "gated", "rescaled", "bound")
SAELENS_ARCH = {"relu": "standard", "rescaled": "standard", "bound": "standard", "topk": "topk",
                "batchtopk": "jumprelu", "matryoshka": "jumprelu", "jumprelu": "jumprelu", "gated": "gated"}


def _one(t: torch.Tensor, i: int) -> torch.Tensor:
    return t.detach()[i].to(device="cpu").contiguous().clone()


def saelens_state(sae: Any, instance: int = 0) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(cfg dict, state dict) of instance ``instance`` of ``sae`` in SAELens 6.x's layout.
    ValueError (one line) for an architecture SAELens cannot express."""
    arch = sae.config.arch
    if arch not in SAELENS_ARCH:
        raise ValueError(f"arch {arch!r} has no SAELens equivalent; exportable: {', '.join(EXPORTABLE)}")
    if not 0 <= int(instance) < sae.n_instances:
        raise ValueError(f"instance must be in [0, {sae.n_instances - 1}], got {instance}")
    i = int(instance)
    W_enc, b_enc = _one(sae.W_enc_IDF, i), _one(sae.b_enc_IF, i)
    W_dec, b_dec = _one(sae.W_dec, i), _one(sae.b_dec_ID, i)
    target = SAELENS_ARCH[arch]
    state: dict[str, torch.Tensor] = {"W_enc": W_enc, "W_dec": W_dec, "b_dec": b_dec}
    extra: dict[str, Any] = {}
    if arch == "rescaled":
        scale = torch.exp(_one(sae.r_mag_IF, i))
        state["W_enc"], state["b_enc"] = W_enc * scale[None, :], b_enc * scale
    elif arch == "gated":
        state.update(b_gate=b_enc, b_mag=_one(sae.b_mag_IF, i), r_mag=_one(sae.r_mag_IF, i))
    else:
        state["b_enc"] = b_enc
    if arch == "jumprelu":
        state["threshold"] = torch.exp(_one(sae.log_threshold_IF, i))
    elif target == "jumprelu":  # batchtopk, matryoshka: one calibrated threshold for every latent
        theta = float(sae.threshold_I.detach()[i])
        state["threshold"] = torch.full_like(b_enc, theta)
    if arch == "topk":
        extra = {"k": int(sae.config.per_instance("k")[i]), "rescale_acts_by_decoder_norm": False}
    dtype = str(W_enc.dtype).replace("torch.", "")
    cfg = {
        "architecture": target,
        "d_in": int(sae.d_model),
        "d_sae": int(sae.dict_size),
        "dtype": dtype,
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        **extra,
        "metadata": {
            "sae_lens_version": SAELENS_VERSION,
            "sae_lens_training_version": SAELENS_VERSION,
            "model_name": "toymodels",
            "hook_name": "toymodels.activations",
            "toymodels_arch": arch,
            "toymodels_instance": i,
            "toymodels_spec": sae.config.subset([i]).to_dict(),
        },
    }
    return cfg, {k: v.contiguous() for k, v in state.items()}


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def to_saelens(sae: Any, out: str | Path, instance: int = 0) -> Path:
    """Write instance ``instance`` of ``sae`` as a SAELens folder ``out`` (cfg.json and
    sae_weights.safetensors, each written atomically); returns the folder."""
    from safetensors.torch import save_file

    cfg, state = saelens_state(sae, instance)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / WEIGHTS_FILE, lambda p: save_file(state, p))

    def write_cfg(p: str) -> None:
        with open(p, "w") as fh:
            json.dump(cfg, fh, indent=2)

    _atomic_write(out / CFG_FILE, write_cfg)
    return out


def export_saelens(sae: Any, out: str | Path) -> list[Path]:
    """Every instance i of ``sae`` as ``out/instance_{i:03d}`` (the ``toymodels export``
    layout); refuses an inexpressible architecture before writing anything."""
    if sae.config.arch not in SAELENS_ARCH:
        raise ValueError(f"arch {sae.config.arch!r} has no SAELens equivalent; exportable: {', '.join(EXPORTABLE)}")
    return [to_saelens(sae, Path(out) / f"instance_{i:03d}", i) for i in range(sae.n_instances)]


# ---------------------------------------------------------------------- import
def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    cfg_path, w_path = path / CFG_FILE, path / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ValueError(f"{path} is not a SAELens SAE folder: {p.name} is missing")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{cfg_path}: not readable JSON ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path}: holds a {type(cfg).__name__}, not a config object")
    try:
        state = load_file(str(w_path))
    except Exception as e:
        raise ValueError(f"{w_path}: not a readable safetensors file ({' '.join(str(e).split())[:120]})") from None
    return cfg, state


def from_saelens(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """The SAELens folder ``path`` (cfg.json + sae_weights.safetensors, as :func:`to_saelens`
    or SAELens's ``save_model`` writes it) as one of our SAEs with one instance.

    ``standard`` becomes relu, ``topk``/``jumprelu``/``gated`` themselves. Refused with
    ValueError (one line): other architectures, ``normalize_activations`` other than
    ``none``, ``reshape_activations`` other than ``none``, ``apply_b_dec_to_input = false``
    with a nonzero b_dec, ``rescale_acts_by_decoder_norm`` with decoder rows that are not
    unit norm, a jumprelu threshold <= 0, and weights whose shapes do not match d_in/d_sae."""
    path = Path(path)
    cfg, st = _read(path)
    arch_l = cfg.get("architecture", "standard")
    mapping = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated"}
    if arch_l not in mapping:
        raise ValueError(f"{path}: SAELens architecture {arch_l!r} has no toymodels equivalent; loadable: {', '.join(mapping)}")
    for key, ok in (("normalize_activations", "none"), ("reshape_activations", "none")):
        if cfg.get(key, "none") not in (ok, None, False):
            raise ValueError(f"{path}: {key} = {cfg.get(key)!r} is not supported (fold it into the weights first)")
    try:
        d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path / CFG_FILE}: needs integer d_in and d_sae") from None
    need = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    need.update({"b_gate": (d_sae,), "b_mag": (d_sae,), "r_mag": (d_sae,)} if arch_l == "gated" else {"b_enc": (d_sae,)})
    if arch_l == "jumprelu":
        need["threshold"] = (d_sae,)
    for name, shape in need.items():
        if name not in st:
            raise ValueError(f"{path / WEIGHTS_FILE}: tensor {name!r} is missing for architecture {arch_l!r}")
        if tuple(st[name].shape) != shape:
            raise ValueError(f"{path / WEIGHTS_FILE}: {name} has shape {tuple(st[name].shape)}, expected {shape}")
    st = {k: v.to(torch.float32) for k, v in st.items()}
    if not cfg.get("apply_b_dec_to_input", True):
        # encoder input x instead of x − b_dec: fold b_dec into the encoder bias
        if arch_l == "gated":
            shift = st["b_dec"] @ st["W_enc"]
            st["b_gate"] = st["b_gate"] + shift
            st["b_mag"] = st["b_mag"] + shift * torch.exp(st["r_mag"])
        else:
            st["b_enc"] = st["b_enc"] + st["b_dec"] @ st["W_enc"]
    norms = st["W_dec"].norm(dim=-1)
    if arch_l == "topk" and cfg.get("rescale_acts_by_decoder_norm") and not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        raise ValueError(f"{path}: rescale_acts_by_decoder_norm with decoder rows of non-unit norm is not supported")
    arch = mapping[arch_l]
    kw: dict[str, Any] = {}
    if arch == "topk":
        k = cfg.get("k")
        if not isinstance(k, int) or not 1 <= k < d_sae:
            raise ValueError(f"{path / CFG_FILE}: topk needs an integer k in [1, d_sae - 1 = {d_sae - 1}], got {k!r}")
        kw["k"] = k
    if arch == "jumprelu":
        th = st["threshold"]
        if not bool((th > 0).all()):
            raise ValueError(f"{path}: a jumprelu threshold <= 0 cannot be stored as log θ (min θ = {float(th.min()):.3g})")
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    opts = None
    spec = meta.get("toymodels_spec") if isinstance(meta.get("toymodels_spec"), dict) else None
    if spec is not None and spec.get("arch") == arch and isinstance(spec.get("options"), dict):
        opts = spec["options"]
    config = SAEConfig(arch=arch, d_model=d_in, dict_size=d_sae, n_instances=1, options=opts, **kw)
    sae = ARCHITECTURES[arch](config, seed=0, device=device)
    with torch.no_grad():
        sae.W_enc_IDF.copy_(st["W_enc"][None])
        sae.W_dec_IFD.copy_(st["W_dec"][None])
        sae.b_dec_ID.copy_(st["b_dec"][None])
        if arch == "gated":
            sae.b_enc_IF.copy_(st["b_gate"][None])
            sae.b_mag_IF.copy_(st["b_mag"][None])
            sae.r_mag_IF.copy_(st["r_mag"][None])
        else:
            sae.b_enc_IF.copy_(st["b_enc"][None])
        if arch == "jumprelu":
            sae.log_threshold_IF.copy_(torch.log(st["threshold"])[None])
    sae._data_initialised_I.fill_(True)  # trained weights: b_dec is not re-set from data
    return sae


__all__ = ["CFG_FILE", "EXPORTABLE", "WEIGHTS_FILE", "export_saelens", "from_saelens", "saelens_state", "to_saelens"]
