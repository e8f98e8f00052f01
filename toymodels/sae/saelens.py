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
refused), and a ``jumprelu`` folder that we exported from a batchtopk or matryoshka SAE
(``metadata.toymodels_arch``, one threshold for every latent) as that architecture again,
its θ copied exactly (an untrained one's θ = 0 included). Other SAELens architectures are
refused with one line.

Exact round trips: :func:`export_saelens` reads every instance back with
:func:`from_saelens` before anything is moved into ``out`` and refuses (one line, nothing
written) unless exporting the read-back SAE gives the same tensors bit for bit — so every
export loads, and file → :func:`from_saelens` → export is the identity on the weights for
all eight architectures. A jumprelu's θ is stored as log θ: the import picks, among the
float32 values next to log θ, one whose float32 exp is θ exactly (one exists for every θ
we export). Non-finite weights, a jumprelu θ that is 0 or infinite in float32 and a topk k
outside [1, d_sae − 1] are refused up front. An ``out`` that already holds files is refused
unless ``overwrite`` (which removes the old export's instance folders first, and refuses a
folder holding anything else), so an output folder never mixes two runs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import math

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


_INSTANCE_DIR = re.compile(r"instance_\d{3,}")


def exact_log(theta: torch.Tensor) -> torch.Tensor:
    """float32 log θ chosen so that ``torch.exp`` of it gives θ back exactly wherever a
    float32 value does (searched among the 8 neighbours of the rounded log); elsewhere the
    rounded log itself (then exp is within a few ulp of θ)."""
    th = theta.to(torch.float32)
    base = torch.log(th.double()).float()
    best = base.clone()
    found = torch.exp(base) == th
    up, down = base.clone(), base.clone()
    for _ in range(4):
        up = torch.nextafter(up, torch.full_like(up, math.inf))
        down = torch.nextafter(down, torch.full_like(down, -math.inf))
        for cand in (up, down):
            hit = ~found & (torch.exp(cand) == th)
            best = torch.where(hit, cand, best)
            found |= hit
    return best


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
        if not 1 <= extra["k"] < int(sae.dict_size):
            raise ValueError(f"instance {i}: topk k = {extra['k']} is outside [1, dict_size - 1 = {int(sae.dict_size) - 1}], "
                             "which SAELens cannot load")
    for name, t in state.items():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"instance {i}: {name} holds NaN or infinity (a diverged run?); nothing exported")
    if arch == "jumprelu" and not bool((state["threshold"] > 0).all()):
        raise ValueError(f"instance {i}: a jumprelu threshold exp(log_threshold) is 0 in float32 "
                         f"(log_threshold min {float(_one(sae.log_threshold_IF, i).min()):.4g}); it cannot be stored as log θ")
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


def _old_export_entries(out: Path) -> list[Path]:
    """The entries of an existing ``out``; ValueError naming the first one that is not part
    of an export (an ``instance_NNN`` folder holding only cfg.json, sae_weights.safetensors
    and leftover temporary files)."""
    entries = sorted(out.iterdir())
    for e in entries:
        ok = e.is_dir() and not e.is_symlink() and _INSTANCE_DIR.fullmatch(e.name) is not None and all(
            f.is_file() and (f.name in (CFG_FILE, WEIGHTS_FILE) or f.name.endswith(".tmp")) for f in e.iterdir())
        if not ok:
            raise ValueError(f"{out} holds {e.name}, which is not part of an SAE export; choose an empty or new folder")
    return entries


def export_saelens(sae: Any, out: str | Path, overwrite: bool = False) -> list[Path]:
    """Every instance i of ``sae`` as ``out/instance_{i:03d}`` (the ``toymodels export``
    layout). Refuses, before writing anything: an inexpressible architecture or instance
    (see :func:`saelens_state`), an ``out`` that already holds files unless ``overwrite``
    (then the old export is removed first; a folder holding other files is refused), and an
    export that :func:`from_saelens` would not read back to the same tensors. The export is
    built in a temporary folder beside ``out`` and moved in when complete."""
    if sae.config.arch not in SAELENS_ARCH:
        raise ValueError(f"arch {sae.config.arch!r} has no SAELens equivalent; exportable: {', '.join(EXPORTABLE)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder")
    old = _old_export_entries(out) if out.is_dir() else []
    if old and not overwrite:
        raise ValueError(f"{out} already holds an export ({len(old)} entries, e.g. {old[0].name}); "
                         "pass --overwrite (overwrite=True) to replace it")
    states = [saelens_state(sae, i) for i in range(sae.n_instances)]  # every refusal before any file
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        for i in range(sae.n_instances):
            d = to_saelens(sae, tmp / f"instance_{i:03d}", i)
            _check_round_trip(d, states[i], i)
        if out.is_dir():
            for e in _old_export_entries(out):
                shutil.rmtree(e)
            for d in sorted(tmp.iterdir()):
                os.replace(d, out / d.name)
            tmp.rmdir()
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return [out / f"instance_{i:03d}" for i in range(sae.n_instances)]


def _check_round_trip(folder: Path, written: tuple[dict[str, Any], dict[str, torch.Tensor]], i: int) -> None:
    """ValueError unless ``folder`` loads with :func:`from_saelens` and exports back to the
    same architecture, k and tensors, bit for bit."""
    try:
        back = from_saelens(folder)
    except ValueError as e:
        raise ValueError(f"instance {i}: the export would not load back ({e}); nothing exported") from None
    cfg, st = written
    cfg2, st2 = saelens_state(back, 0)
    for key in ("architecture", "k"):
        if cfg.get(key) != cfg2.get(key):
            raise ValueError(f"instance {i}: the export loads back with {key} {cfg2.get(key)!r}, not {cfg.get(key)!r}; nothing exported")
    for name, t in st.items():
        t2 = st2.get(name)
        if t2 is None or t2.shape != t.shape or not torch.equal(t2.to(t.dtype), t):
            raise ValueError(f"instance {i}: {name} does not load back bit for bit; nothing exported")


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
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    opts = None
    spec = meta.get("toymodels_spec") if isinstance(meta.get("toymodels_spec"), dict) else None
    ours = meta.get("toymodels_arch")
    theta = None
    if arch == "jumprelu" and ours in ("batchtopk", "matryoshka") and spec is not None and spec.get("arch") == ours:
        th = st["threshold"]
        if bool((th == th[0]).all()) and bool(torch.isfinite(th[0])):  # one θ: our batchtopk / matryoshka again
            arch, theta = ours, th[0]
    if arch == "jumprelu":
        th = st["threshold"]
        if not bool((th > 0).all()):
            raise ValueError(f"{path}: a jumprelu threshold <= 0 cannot be stored as log θ (min θ = {float(th.min()):.3g})")
    if theta is not None:
        try:
            config = SAEConfig.from_dict({**spec, "n_instances": 1})
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path / CFG_FILE}: metadata.toymodels_spec is not a valid {ours} config ({e})") from None
        if (config.d_model, config.dict_size) != (d_in, d_sae):
            raise ValueError(f"{path / CFG_FILE}: metadata.toymodels_spec has d_model/dict_size "
                             f"{(config.d_model, config.dict_size)}, but d_in/d_sae are {(d_in, d_sae)}")
    else:
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
            sae.log_threshold_IF.copy_(exact_log(st["threshold"])[None])
        if theta is not None:
            sae.threshold_I.fill_(float(theta))
    sae._data_initialised_I.fill_(True)  # trained weights: b_dec is not re-set from data
    return sae


__all__ = ["CFG_FILE", "EXPORTABLE", "WEIGHTS_FILE", "exact_log", "export_saelens", "from_saelens", "saelens_state", "to_saelens"]
