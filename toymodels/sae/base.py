"""The shared machinery of every batched SAE: parameters with a leading instance axis,
the trainer's hooks, the options every architecture takes, and bookkeeping.

Shapes: I instances, B batch, D model dim, F latents. Parameter names end in their shape
(``W_enc_IDF``, ``W_dec_IFD``, ``b_enc_IF``, ``b_dec_ID``); the suffix is used, not just
read — a parameter whose suffix holds an ``F`` has a latent axis (reset when that latent is
resampled), one whose suffix starts with ``I`` has an instance axis (sliced by
:meth:`SAE.subset`).

Every SAE reconstructs x̂ = f(x) W_dec + b_dec from codes f (I, B, F) and trains on
per-instance losses (I,) summed over instances, so under Adam each instance trains exactly as
if alone (an L1 or k sweep is one run). What it adds, per architecture, is its encoder
``encode``, its loss terms ``_forward_terms`` and optionally a hand-derived gradient
(:meth:`SAE.loss_and_grad_core`), its own ``Options`` dataclass and ``check_config`` rules;
the base owns the training step around it (:meth:`SAE.loss_and_grad`, which subclasses may
not override) and adds

- the decoder-orthogonality penalty c · mean_{i≠j} cos²(d_i, d_j) (seed 000),
- the linear warm-up of the sparsity coefficient,
- unit-norm decoder rows by a constrained step: the gradient's radial part is projected
  out before the optimizer step (:meth:`SAE.before_optimizer_step`), the optimizer's step on
  the rows is scaled by ``decoder_lr_scale`` (10 by default for relu, topk, batchtopk: the
  angular speed of SAELens's rows stored at norm 0.1) and rows are renormalised after it (:meth:`SAE.after_optimizer_step`),
- b_dec initialised from the first batch (zeros, mean or geometric median), per instance:
  an instance that has not stepped yet is initialised from its own first batch, however the
  instances are split into chunks (:meth:`SAE.subset` / :meth:`SAE.load_instances`),
- dead-latent tracking and resampling (Bricken et al. 2023), which resets the Adam moments
  of the resampled rows through the optimizer the trainer attaches
  (:meth:`SAE.attach_optimizer`).
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from .._validate import check_seed
from ..device import derive_seed, make_generator, resolve_device
from .config import SAEConfig
from .registry import NoOptions


# ---------------------------------------------------------------------- helpers
def _suffix(name: str) -> str:
    s = name.rsplit("_", 1)[-1]
    return s if "_" in name and s.isalpha() and s.isupper() else ""


def latent_axis(name: str) -> int | None:
    """The latent (F) axis of a tensor named with a shape suffix, e.g. 2 for ``W_enc_IDF``."""
    s = _suffix(name)
    return s.index("F") if s.startswith("I") and "F" in s else None


def has_instance_axis(name: str) -> bool:
    """Whether a tensor's shape suffix starts with the instance axis I."""
    return _suffix(name).startswith("I")


def geometric_median(x_IBD: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """argmin_y Σ_b ||x_b − y|| per instance (I, D), by Weiszfeld's algorithm:
    y ← Σ_b w_b x_b / Σ_b w_b with w_b = 1 / ||x_b − y||, starting from the mean.

    Each instance stops on its own (when its step is below tol·(1 + ||y||)), so instance i's
    median does not depend on which other instances share the call."""
    x = x_IBD.double()
    y = x.mean(dim=1)
    moving = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(iters):
        dist = (x - y[:, None, :]).norm(dim=-1).clamp_min(1e-12)  # (I, B)
        w = 1.0 / dist
        y_new = (w[..., None] * x).sum(dim=1) / w.sum(dim=1, keepdim=True)
        shift = (y_new - y).norm(dim=-1)
        y = torch.where(moving[:, None], y_new, y)
        moving &= shift > tol * (1.0 + y.norm(dim=-1))
        if not bool(moving.any()):
            break
    return y.to(x_IBD.dtype)


def decoder_orthogonality(W_IFD: torch.Tensor) -> torch.Tensor:
    """mean_{i≠j} cos²(d_i, d_j) over the F decoder rows, per instance (I,); zero rows count
    as orthogonal. 0 when F = 1."""
    n_f = W_IFD.shape[1]
    if n_f < 2:
        return W_IFD.new_zeros(W_IFD.shape[0])
    norms = W_IFD.norm(dim=-1, keepdim=True)
    u = W_IFD / norms.clamp_min(1e-12)
    gram = torch.bmm(u, u.transpose(1, 2))  # (I, F, F)
    off = gram.square().sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).square().sum(-1)
    return off / (n_f * (n_f - 1))


# ---------------------------------------------------------------------- the base class
class SAE(nn.Module):
    """A batched sparse autoencoder: I independent SAEs of one architecture.

    Subclasses set ``arch`` (and ``Options``, ``uses_k`` where they differ), create their
    parameters in :meth:`_init_parameters` and implement :meth:`encode` and
    :meth:`_forward_terms`; a hand-derived gradient overrides :meth:`loss_and_grad_core`.
    The trainer (:func:`toymodels.train.train`) drives :meth:`loss_and_grad` and the hooks.
    """

    arch: ClassVar[str] = ""
    family: ClassVar[str] = "sae"
    Options: ClassVar[type] = NoOptions
    """The architecture's own options: a frozen dataclass, each field with a default and a
    docstring (``metadata={"flag": ...}`` fixes its CLI flag). ``config.options`` is one."""
    uses_k: ClassVar[bool] = False
    """Sparsity set by ``k`` (required, in [1, dict_size − 1]) rather than by a penalty."""
    legacy_options: ClassVar[dict[str, str]] = {}
    """Flat SAEConfig keys of specs saved before ``Options`` existed → the option they became."""
    unit_norm_params: ClassVar[tuple[str, ...]] = ("W_dec_IFD",)
    """Parameters whose rows (last axis) are kept at unit norm by the constrained step."""
    default_decoder_lr_scale: ClassVar[float] = 1.0
    """``SAEConfig.decoder_lr_scale`` when the config leaves it None (10 where SAELens parity
    was measured: relu, topk, batchtopk; 1, the old behaviour, elsewhere)."""
    default_encoder_init_norm: ClassVar[float] = 1.0
    """``SAEConfig.encoder_init_norm`` when the config leaves it None (0.1 for relu, topk,
    batchtopk; 1, the old behaviour, elsewhere)."""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "loss_and_grad" in vars(cls):
            raise TypeError(
                f"{cls.__name__} overrides loss_and_grad; override loss_and_grad_core instead (the base's "
                "loss_and_grad adds the data init, the orthogonality penalty and dead-latent tracking)"
            )

    @classmethod
    def check_config(cls, config: SAEConfig) -> None:
        """Cross-field rules of this architecture, run by :class:`SAEConfig` at construction
        (after the common checks); raise ValueError naming the field."""

    def __init__(self, config: SAEConfig, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__()
        if config.arch != self.arch:
            raise ValueError(f"{type(self).__name__} is arch {self.arch!r} but config.arch is {config.arch!r}; use build_sae(config)")
        self.config = config
        self.seed = check_seed("seed", seed)
        self.device_ = resolve_device(device)
        n_i, d, n_f = config.n_instances, config.d_model, config.dict_size
        seeds = [derive_seed(self.seed, "sae-instance", i) for i in range(n_i)]
        self.register_buffer("instance_seed_I", torch.tensor(seeds, dtype=torch.int64, device=self.device_))
        self.register_buffer("steps_since_fired_IF", torch.zeros(n_i, n_f, dtype=torch.int64, device=self.device_))
        self.register_buffer("step_count_I", torch.zeros(n_i, dtype=torch.int64, device=self.device_))
        self._optimizer: torch.optim.Optimizer | None = None
        self._scratch_buffers: dict[str, torch.Tensor] = {}
        self._data_initialised_I = torch.zeros(n_i, dtype=torch.bool)  # b_dec set from data (per instance)
        self._rows_before_step: list[torch.Tensor] | None = None  # unit-norm rows before this step (decoder_lr_scale)
        self.activation_width = 3 * n_f + 4 * d  # floats per sample per instance (memory estimate)
        self._init_parameters()

    # ------------------------------------------------------------------ shapes
    n_instances = property(lambda self: self.config.n_instances, doc="I")
    d_model = property(lambda self: self.config.d_model, doc="D")
    dict_size = property(lambda self: self.config.dict_size, doc="F")
    options = property(lambda self: self.config.options, doc="The architecture's options (``config.options``).")

    @property
    def dtype(self) -> torch.dtype:
        return self.b_dec_ID.dtype

    @property
    def n_steps(self) -> int:
        """Optimizer steps taken (``step_count_I`` counts them per instance; the instances of
        one SAE always step together)."""
        return int(self.step_count_I.max())

    @property
    def W_dec(self) -> torch.Tensor:
        """The decoder (I, F, D): row j is latent j's direction d_j."""
        return self.W_dec_IFD

    def decoder_directions(self) -> torch.Tensor:
        """The decoder as columns (I, D, F), the layout of :func:`toymodels.metrics.mmcs`."""
        return self.W_dec.detach().transpose(1, 2)

    def _scratch(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A CPU work buffer reused from step to step (not state, never saved): a fresh
        (I, B, F) tensor each step costs a page fault per 4 KiB, about a matmul's time. On
        CUDA the caching allocator already reuses memory, so this is a plain allocation."""
        if like.device.type != "cpu":
            return torch.empty(shape, dtype=like.dtype, device=like.device)
        buf = self._scratch_buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._scratch_buffers[name] = buf
        return buf

    def release_scratch(self) -> None:
        """Free the CPU work buffers kept between training steps (they come back on the next step)."""
        self._scratch_buffers.clear()

    # ------------------------------------------------------------------ initialisation
    def _generator(self, instance: int, *keys: object) -> torch.Generator:
        """A generator for one instance, so instance i's randomness never depends on I."""
        return make_generator(derive_seed(int(self.instance_seed_I[instance]), *keys), self.device_)

    def _random_unit_rows(self, n_rows: int, dim: int, tag: str) -> torch.Tensor:
        """(I, n_rows, dim) Gaussian rows scaled to unit norm, one generator per instance."""
        out = []
        for i in range(self.n_instances):
            w = torch.randn(n_rows, dim, generator=self._generator(i, tag), device=self.device_)
            out.append(w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return torch.stack(out)

    def _init_standard(self) -> None:
        """W_dec_IFD unit rows, W_enc_IDF = c·W_decᵀ (tied) or independent columns of norm c
        (c = ``encoder_init_norm``), b_enc_IF = 0, b_dec_ID = 0."""
        n_i, d, n_f = self.n_instances, self.d_model, self.dict_size
        W_dec = self._random_unit_rows(n_f, d, "decoder")
        self._init_encoder(W_dec)
        self.W_dec_IFD = nn.Parameter(W_dec)
        self.b_dec_ID = nn.Parameter(torch.zeros(n_i, d, device=self.device_))

    def _init_encoder(self, W_dec: torch.Tensor) -> None:
        """W_enc_IDF = c·W_decᵀ (tied) or independent columns of norm c, c =
        ``encoder_init_norm``; b_enc_IF = 0. A copy, never a view: with D = 1 or F = 1 the
        transpose is already contiguous, and a shared storage would tie the encoder to the
        decoder (and fail to save)."""
        n_f, d = self.dict_size, self.d_model
        enc = W_dec if self.config.tied_init else self._random_unit_rows(n_f, d, "encoder")
        enc = enc.transpose(1, 2) * self.config.encoder_init_norm  # a new tensor: never shares W_dec's storage
        self.W_enc_IDF = nn.Parameter(enc.clone(memory_format=torch.contiguous_format))
        self.b_enc_IF = nn.Parameter(torch.zeros(self.n_instances, n_f, device=self.device_))

    def _init_parameters(self) -> None:
        self._init_standard()

    def latent_init_value(self, name: str) -> float:
        """The value a per-latent parameter other than W_enc/W_dec/b_enc is reset to when
        its latent is resampled (its initial value)."""
        return 0.0

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, instances: torch.Tensor | None = None) -> None:
        """Set b_dec from a batch (1 or I, B, D) per ``config.b_dec_init``, for the
        ``instances`` (I,) bool mask (default: all)."""
        x = self._check_input(x).expand(self.n_instances, -1, -1)
        mask = torch.ones(self.n_instances, dtype=torch.bool) if instances is None else instances.cpu()
        how = self.config.b_dec_init
        if how != "zeros":
            value = x.mean(dim=1) if how == "mean" else geometric_median(x)
            self.b_dec_ID.copy_(torch.where(mask.to(self.device_)[:, None], value, self.b_dec_ID))
        self._data_initialised_I |= mask

    def _maybe_init_from_data(self, x: torch.Tensor) -> None:
        """b_dec from this batch for every instance that has neither stepped nor been initialised."""
        if bool(self._data_initialised_I.all()):  # a CPU flag: no device sync on later steps
            return
        need = ~self._data_initialised_I & (self.step_count_I.cpu() == 0)
        if bool(need.any()):
            self.init_from_data(x, need)
        self._data_initialised_I.fill_(True)

    # ------------------------------------------------------------------ coefficients
    def _per_instance(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=self.dtype, device=self.device_)

    def sparsity_coefficient(self, train: bool = False) -> torch.Tensor:
        """λ per instance (I,); while training, times min(1, (step + 1) / warm-up steps)."""
        lam = self._per_instance(self.config.per_instance("l1_coefficient"))
        warm = self.config.sparsity_warmup_steps
        if train and warm:
            lam = lam * ((self.step_count_I + 1).to(lam.dtype) / warm).clamp(max=1.0)
        return lam

    # ------------------------------------------------------------------ maths
    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """x must be a (1 or I, B >= 1, D) tensor of the SAE's dtype on its device."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor shaped (1 or n_instances, batch, d_model); got {type(x).__name__}")
        if x.ndim != 3 or x.shape[-1] != self.d_model or x.shape[0] not in (1, self.n_instances):
            raise ValueError(
                f"x must be shaped (1 or n_instances = {self.n_instances}, batch, d_model = {self.d_model}); "
                f"got {tuple(x.shape)}"
            )
        if x.shape[1] == 0:
            raise ValueError(f"x is an empty batch {tuple(x.shape)}: give at least one sample")
        if x.dtype != self.dtype:
            raise ValueError(f"x must have the SAE's dtype {self.dtype}, got {x.dtype} (convert with x.to(sae.dtype))")
        if x.device != self.b_dec_ID.device:
            raise ValueError(f"x is on {x.device} but the SAE is on {self.b_dec_ID.device}")
        return x

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """(x − b_dec) W_enc + b_enc, shape (I, B, F)."""
        xc = x - self.b_dec_ID[:, None, :]
        return torch.baddbmm(self.b_enc_IF[:, None, :], xc, self.W_enc_IDF)

    def encode(self, x: torch.Tensor, *, train: bool = False) -> torch.Tensor:  # pragma: no cover - abstract
        """Codes f (I, B, F) of a batch (1 or I, B, D); ``train`` selects the training-time
        code where it differs (batchtopk)."""
        raise NotImplementedError

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """x̂ = f W_dec + b_dec, shape (I, B, D)."""
        return torch.baddbmm(self.b_dec_ID[:, None, :], f, self.W_dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction x̂ (I, B, D) at inference."""
        return self.decode(self.encode(self._check_input(x)))

    def encode_decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes f (I, B, F), reconstruction x̂ (I, B, D)) at inference, in one pass."""
        f = self.encode(self._check_input(x))
        return f, self.decode(f)

    def _forward_terms(self, x: torch.Tensor, train: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:  # pragma: no cover
        """(terms, fired): per-instance loss terms (I,) with autograd — "mse" (mean_b ||x − x̂||²),
        "sparsity" (before λ) and optionally "aux" (already weighted) — and which latents
        fired in the batch (I, F) bool."""
        raise NotImplementedError

    def _total(self, terms: dict[str, torch.Tensor], train: bool, orthogonality: bool = True) -> dict[str, torch.Tensor]:
        total = terms["mse"] + self.sparsity_coefficient(train) * terms["sparsity"]
        if "aux" in terms:
            total = total + terms["aux"]
        c = self.config.decoder_orthogonality
        if c > 0 and orthogonality:
            terms["orthogonality"] = decoder_orthogonality(self.W_dec)
            total = total + c * terms["orthogonality"]
        terms["total"] = total
        return terms

    def loss_terms(self, x: torch.Tensor, *, train: bool = True) -> dict[str, torch.Tensor]:
        """Per-instance loss terms (I,) with their autograd graph: mse, sparsity (before λ),
        aux (where the architecture has one), orthogonality (when its coefficient is > 0)
        and total = mse + λ·sparsity + aux + c·orthogonality."""
        terms, _ = self._forward_terms(self._check_input(x), train)
        return self._total(terms, train)

    @torch.no_grad()
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The total loss per instance (I,) at inference (final λ, calibrated thresholds)."""
        return self.loss_terms(x, train=False)["total"].detach()

    def loss_and_grad(self, x: torch.Tensor) -> torch.Tensor:
        """One training step's per-instance loss (I,) with every parameter's ``.grad`` filled.

        The template every architecture runs (subclasses override :meth:`loss_and_grad_core`,
        never this): check the batch, initialise b_dec from it where due
        (:meth:`_maybe_init_from_data`), the architecture's loss and gradient, then the
        decoder-orthogonality penalty and dead-latent tracking (:meth:`_finish_hand_step`)."""
        x = self._check_input(x)
        self._maybe_init_from_data(x)
        loss, fired = self.loss_and_grad_core(x)
        return self._finish_hand_step(loss, fired)

    def loss_and_grad_core(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss (I,) without the orthogonality penalty, fired (I, F) bool), with the
        gradients of that loss in ``.grad``. Autograd through :meth:`_forward_terms` here;
        an architecture may override it with a hand-derived backward (it must then set or
        accumulate every parameter's ``.grad``)."""
        terms, fired = self._forward_terms(x, True)
        total = self._total(terms, True, orthogonality=False)["total"]
        total.sum().backward()
        return total.detach(), fired

    # ------------------------------------------------------------------ dead latents
    @torch.no_grad()
    def _record_firing(self, fired_IF: torch.Tensor) -> None:
        s = self.steps_since_fired_IF
        s.add_(1).masked_fill_(fired_IF, 0)

    def dead_latents(self) -> torch.Tensor:
        """(I, F) bool: latents that have not fired for ``dead_window`` training steps."""
        return self.steps_since_fired_IF >= self.config.dead_window

    # ------------------------------------------------------------------ trainer hooks
    def _finish_hand_step(self, loss: torch.Tensor, fired: torch.Tensor) -> torch.Tensor:
        """The end of every training step (:meth:`loss_and_grad`): add the
        decoder-orthogonality penalty (its gradient through autograd, accumulated into
        ``.grad``) and record which latents fired."""
        c = self.config.decoder_orthogonality
        if c > 0:
            ortho = decoder_orthogonality(self.W_dec)
            (c * ortho).sum().backward()
            loss = loss + c * ortho.detach()
        self._record_firing(fired)
        return loss

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Called by the trainer with its optimizer, so resampling can reset Adam moments."""
        self._optimizer = optimizer

    def _unit_norm_tensors(self) -> list[nn.Parameter]:
        return [getattr(self, n) for n in self.unit_norm_params]

    @torch.no_grad()
    def before_optimizer_step(self, step: int | None = None) -> None:
        """Remove the radial part of each unit-norm row's gradient: g ← g − (g·d) d (rows d
        are unit norm here: initialised so and renormalised after every step); with
        ``decoder_lr_scale`` ≠ 1, keep a copy of the rows so :meth:`after_optimizer_step`
        can scale the optimizer's step on them."""
        scale = self.config.decoder_lr_scale != 1.0
        prev = []
        for j, p in enumerate(self._unit_norm_tensors()):
            if p.grad is not None:
                p.grad.addcmul_((p.grad * p).sum(-1, keepdim=True), p, value=-1.0)
            if scale:  # a (reused) work buffer, F·D floats: small next to the step's B·F·D
                prev.append(self._scratch(f"unit_rows_before_step_{j}", tuple(p.shape), p).copy_(p))
        self._rows_before_step = prev or None

    @torch.no_grad()
    def _scale_decoder_step_(self) -> None:
        """d ← d_before + s (d − d_before), s = ``decoder_lr_scale``: the optimizer's step on the
        unit-norm rows times s (as if their learning rate were s·lr). Only right after
        :meth:`before_optimizer_step` saved d_before (a copy is used once, then dropped)."""
        prev, self._rows_before_step = self._rows_before_step, None
        if prev is None:
            return
        s = self.config.decoder_lr_scale
        for p, p0 in zip(self._unit_norm_tensors(), prev):
            p.sub_(p0).mul_(s).add_(p0)

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale every constrained decoder row to unit norm (zero rows stay zero)."""
        for p in self._unit_norm_tensors():
            p.div_(p.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def after_optimizer_step(self, step: int | None = None, x: torch.Tensor | None = None) -> None:
        """Scale the optimizer's step on the decoder rows by ``decoder_lr_scale``, renormalise
        them, count the step, and every ``resample_every`` steps resample dead latents
        towards high-loss inputs of ``x``."""
        self._scale_decoder_step_()
        self.normalize_decoder_()
        self.step_count_I.add_(1)
        every = self.config.resample_every
        if every and x is not None and self.n_steps % every == 0:
            self.resample_dead_latents(x)

    # ------------------------------------------------------------------ resampling
    @torch.no_grad()
    def resample_dead_latents(self, x: torch.Tensor, dead: torch.Tensor | None = None) -> torch.Tensor:
        """Bricken et al. 2023 ("Towards Monosemanticity"), on the batch ``x``.

        For each instance with dead latents (default :meth:`dead_latents`): score each input by
        its squared reconstruction error e_b = ||x_b − x̂_b||², draw one input per dead latent
        with probability ∝ e_b², and set the latent's decoder row to the unit vector along
        x_b − b_dec, its encoder column to that vector times ``resample_scale`` times the mean
        norm of the alive encoder columns, its encoder bias (and any other per-latent
        parameter) to its initial value; reset its Adam moments and its dead counter.
        Draws come from a generator seeded by (instance seed, step), so an instance resamples
        the same way whether trained alone or in a sweep. Returns the count per instance (I,).
        """
        x = self._check_input(x).expand(self.n_instances, -1, -1)
        dead = self.dead_latents() if dead is None else dead.to(self.device_)
        counts = dead.sum(dim=1)
        if not bool(counts.any()):
            return counts
        err = (x - self.forward(x)).square().sum(-1)  # (I, B)
        weight = err.double().square()
        for i in counts.nonzero().flatten().tolist():
            cols = dead[i].nonzero().flatten()
            w = weight[i] if float(weight[i].sum()) > 0 else torch.ones_like(weight[i])
            picks = torch.multinomial(w, len(cols), replacement=True, generator=self._generator(i, "resample", int(self.step_count_I[i])))
            v = x[i, picks] - self.b_dec_ID[i]
            n = v.norm(dim=-1, keepdim=True)
            v = torch.where(n > 1e-12, v / n.clamp_min(1e-12), torch.zeros_like(v))
            alive = ~dead[i]
            enc_norm = self.W_enc_IDF[i][:, alive].norm(dim=0).mean() if bool(alive.any()) else torch.tensor(1.0)
            self._reinit_latents(i, cols, v, float(enc_norm) * self.config.resample_scale)
        self.steps_since_fired_IF.masked_fill_(dead, 0)
        self._reset_optimizer_state(dead)
        return counts

    def _reinit_latents(self, i: int, cols: torch.Tensor, v: torch.Tensor, enc_scale: float) -> None:
        """Re-initialise latents ``cols`` of instance ``i`` towards unit input directions v (n, D)."""
        self.W_dec_IFD[i, cols] = v
        self.W_enc_IDF[i][:, cols] = v.t() * enc_scale
        self.b_enc_IF[i, cols] = 0.0
        for name, p in self.named_parameters():
            if latent_axis(name) == 1 and name not in ("b_enc_IF", "W_dec_IFD"):
                p[i, cols] = self.latent_init_value(name)

    def _reset_optimizer_state(self, dead: torch.Tensor) -> None:
        """Zero the Adam moments of every per-latent parameter entry of the ``dead`` (I, F) latents."""
        opt = self._optimizer
        if opt is None:
            return
        for name, p in self.named_parameters():
            axis = latent_axis(name)
            state = opt.state.get(p)
            if axis is None or not state:
                continue
            shape = [1] * p.ndim
            shape[0], shape[axis] = self.n_instances, self.dict_size
            mask = dead.view(shape)
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                if key in state:
                    state[key].masked_fill_(mask, 0.0)

    # ------------------------------------------------------------------ bookkeeping
    def spec(self) -> dict[str, Any]:
        """JSON-ready description; :func:`toymodels.sae.sae_from_spec` rebuilds the model."""
        return {"family": "sae", **self.config.to_dict(), "seed": self.seed}

    def subset(self, index: Any) -> "SAE":
        """A new SAE holding the chosen instances (weights, counters and seeds copied)."""
        idx = torch.arange(self.n_instances)[index].reshape(-1)
        new = type(self)(self.config.subset(idx.tolist()), seed=self.seed, device=self.device_).to(self.dtype)
        dev_idx = idx.to(self.device_)
        state = {k: (v[dev_idx] if has_instance_axis(k) else v).clone() for k, v in self.state_dict().items()}
        new.load_state_dict(state)
        new._data_initialised_I = self._data_initialised_I[idx].clone()
        return new

    @torch.no_grad()
    def load_instances(self, index: Any, other: "SAE") -> None:
        """Copy ``other``'s instances into instances ``index`` of this SAE."""
        idx = torch.arange(self.n_instances)[index].reshape(-1).to(self.device_)
        mine = self.state_dict()
        for k, v in other.state_dict().items():
            if has_instance_axis(k):
                mine[k][idx] = v.to(mine[k].device)
            else:
                mine[k].copy_(v)
        self._data_initialised_I[idx.cpu()] = other._data_initialised_I

    def extra_repr(self) -> str:
        c = self.config
        return f"arch={c.arch}, n_instances={c.n_instances}, d_model={c.d_model}, dict_size={c.dict_size}"
