"""Hessian-vector products of toy models (seed 004): H(θ)·v without the Hessian in memory.

* :func:`hvp` — H(θ)·v = d/dε ∇L(θ + εv)|₀, forward-mode differentiation of the reverse-mode
  gradient (Pearlmutter 1994), through ``torch.func``; cost a small multiple of one gradient.
* :func:`toy_model_instance_loss` — one instance of a trained batched toy model as a scalar
  function of that instance's flattened parameters (for ReLUOutput: W (M, N) then b (N,)),
  on a fixed batch, ready for HVPs, and for small models :func:`toy_model_loss_hessian`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch.func import functional_call, grad, hessian as _func_hessian, jacrev, jvp, vmap

from toymodels._validate import check_choice, check_int

__all__ = ["ParamFlattener", "flatten_params", "hvp", "hvp_operator", "explicit_hessian", "InstanceLoss",
           "toy_model_instance_loss", "toy_model_loss_hessian"]

Matvec = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- parameters


class ParamFlattener:
    """Turns a dict of tensors into one flat vector and back, in a fixed order.

    ``flatten`` concatenates ``p.reshape(-1)`` in the order of the template's keys (row-major
    within each tensor); ``unflatten`` is its inverse. Both work inside ``torch.func``
    transforms, so a loss of a dict can be differentiated as a loss of a flat vector.
    """

    def __init__(self, template: Mapping[str, torch.Tensor]) -> None:
        if not isinstance(template, Mapping) or not template:
            raise ValueError("a ParamFlattener needs a non-empty dict of tensors")
        for k, p in template.items():
            if not isinstance(p, torch.Tensor):
                raise ValueError(f"parameter {k!r} must be a tensor, got {type(p).__name__}")
        self.names = tuple(template)
        self.shapes = tuple(tuple(template[k].shape) for k in self.names)
        self.numels = tuple(int(math.prod(s)) for s in self.shapes)
        self.dim = int(sum(self.numels))

    def flatten(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(dim,) vector: the tensors' entries one after another."""
        if set(params) != set(self.names):
            raise ValueError(f"expected parameters {list(self.names)}, got {list(params)}")
        for k, s in zip(self.names, self.shapes):
            if tuple(params[k].shape) != s:
                raise ValueError(f"parameter {k!r} must have shape {s}, got {tuple(params[k].shape)}")
        return torch.cat([params[k].reshape(-1) for k in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The dict whose :meth:`flatten` is ``flat`` (views into it)."""
        if flat.ndim != 1 or flat.shape[0] != self.dim:
            raise ValueError(f"flat parameters must have shape ({self.dim},), got {tuple(flat.shape)}")
        parts = torch.split(flat, list(self.numels))
        return {k: t.view(s) for k, t, s in zip(self.names, parts, self.shapes)}

    def slices(self) -> dict[str, slice]:
        """Where each tensor sits in the flat vector."""
        out, start = {}, 0
        for k, n in zip(self.names, self.numels):
            out[k] = slice(start, start + n)
            start += n
        return out


def flatten_params(params: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ParamFlattener]:
    """``(flat, flattener)`` for a dict of tensors; ``flattener.unflatten(flat)`` gives them back."""
    fl = ParamFlattener(params)
    return fl.flatten(params), fl


# ----------------------------------------------------------------------------- HVPs


def _like(name: str, v: Any, ref: torch.Tensor) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        v = torch.as_tensor(np.asarray(v, dtype=np.float64))
    if tuple(v.shape) != tuple(ref.shape):
        raise ValueError(f"{name} must have shape {tuple(ref.shape)}, got {tuple(v.shape)}")
    return v.to(device=ref.device, dtype=ref.dtype)


def hvp(loss_fn: Callable[[Any], torch.Tensor], params: Any, v: Any) -> Any:
    """Hessian-vector product H(θ)·v of a scalar loss, without forming H.

    Formula: H(θ)v = d/dε ∇L(θ + εv) at ε = 0 — the forward-mode (jvp) derivative of the
    reverse-mode gradient, "forward-over-reverse" (Pearlmutter 1994, "Fast exact multiplication
    by the Hessian"; ``torch.func.jvp(torch.func.grad(L), (θ,), (v,))``). Exact to rounding
    (no finite differences); cost a small multiple of one gradient; memory O(dim θ).

    ``params`` is a tensor (any shape; ``v`` the same shape) or a dict of tensors, in which
    case ``v`` is a dict of the same shapes (the result is a dict) or a flat vector in
    :class:`ParamFlattener` order (the result is flat). ``loss_fn`` must return a scalar and be
    written with torch operations. Use float64 for accuracy to ~1e-14.
    """
    if isinstance(params, torch.Tensor):
        v = _like("v", v, params)
        return jvp(grad(loss_fn), (params,), (v,))[1]
    if isinstance(params, Mapping):
        fl = ParamFlattener(params)
        flat_out = isinstance(v, torch.Tensor)
        if flat_out:
            if v.ndim != 1 or v.shape[0] != fl.dim:
                raise ValueError(f"a flat v must have shape ({fl.dim},) for these parameters, got {tuple(v.shape)}")
            ref = next(iter(params.values()))
            vd = fl.unflatten(v.to(device=ref.device, dtype=ref.dtype))
        elif isinstance(v, Mapping):
            if set(v) != set(fl.names):
                raise ValueError(f"v must have the keys {list(fl.names)}, got {list(v)}")
            vd = {k: _like(f"v[{k!r}]", v[k], params[k]) for k in fl.names}
        else:
            raise ValueError(f"v must be a tensor or a dict of tensors, got {type(v).__name__}")
        p = {k: params[k] for k in fl.names}
        out = jvp(grad(loss_fn), (p,), (vd,))[1]
        return fl.flatten(out) if flat_out else out
    raise ValueError(f"params must be a tensor or a dict of tensors, got {type(params).__name__}")


def hvp_operator(loss_fn: Callable[[Any], torch.Tensor], params: Any) -> Matvec:
    """v ↦ H(θ)v on flat vectors (θ a flat tensor, or a dict flattened by :class:`ParamFlattener`),
    ready for :func:`lanczos`, :func:`hutchinson_trace` and :func:`slq_density`."""
    if isinstance(params, torch.Tensor) and params.ndim != 1:
        shape = params.shape
        return lambda v: hvp(loss_fn, params, v.reshape(shape)).reshape(-1)
    return lambda v: hvp(loss_fn, params, v)


def explicit_hessian(loss_fn: Callable[[Any], torch.Tensor], params: Any, mode: str = "forward-over-reverse",
                     chunk_size: int | None = None) -> torch.Tensor:
    """The full Hessian (dim, dim) of a scalar loss in flat-parameter coordinates.

    ``mode='forward-over-reverse'`` is ``torch.func.hessian`` (jacfwd of jacrev);
    ``'reverse-over-reverse'`` is jacrev of jacrev, an independent differentiation path.
    ``chunk_size`` bounds how many columns are differentiated at once (memory for large
    batches); for forward-over-reverse it builds the columns as H e_i by :func:`hvp`.
    Memory O(dim²): for small models and for checking :func:`hvp`.
    """
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, 1)
    check_choice("mode", mode, ("forward-over-reverse", "reverse-over-reverse"))
    if isinstance(params, Mapping):
        flat, fl = flatten_params(params)
        f = lambda t: loss_fn(fl.unflatten(t))  # noqa: E731
    elif isinstance(params, torch.Tensor):
        shape = params.shape
        flat = params.reshape(-1)
        f = lambda t: loss_fn(t.view(shape))  # noqa: E731
    else:
        raise ValueError(f"params must be a tensor or a dict of tensors, got {type(params).__name__}")
    if mode == "forward-over-reverse":
        if chunk_size is None:
            return _func_hessian(f)(flat)
        eye = torch.eye(flat.shape[0], dtype=flat.dtype, device=flat.device)
        return vmap(lambda e: jvp(grad(f), (flat,), (e,))[1], chunk_size=chunk_size)(eye)
    return jacrev(jacrev(f), chunk_size=chunk_size)(flat)


# ----------------------------------------------------------------------------- toy models


@dataclass
class InstanceLoss:
    """One instance's loss as a function of its flat parameters, with HVPs and the Hessian."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    params: torch.Tensor
    flattener: ParamFlattener

    @property
    def dim(self) -> int:
        return int(self.params.shape[0])

    def __call__(self, flat: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(self.params if flat is None else flat)

    def grad(self) -> torch.Tensor:
        return grad(self.fn)(self.params)

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """H·v (see :func:`hvp`)."""
        return hvp(self.fn, self.params, v)

    def hessian(self, mode: str = "forward-over-reverse", chunk_size: int | None = None) -> torch.Tensor:
        """The explicit (dim, dim) Hessian (see :func:`explicit_hessian`)."""
        return explicit_hessian(self.fn, self.params, mode, chunk_size)


def toy_model_instance_loss(model: torch.nn.Module, instance: int, x: torch.Tensor,
                            dtype: torch.dtype = torch.float64) -> InstanceLoss:
    """The loss of one instance of a batched toymodels model as a function of that instance's
    flattened parameters, on the fixed batch ``x``.

    L(θ) = mean_{b, i} I_i (t_i(x_b) − x'_i(x_b; θ))², the per-instance loss of
    ``model.loss`` (Elhage et al. 2022, eq. 2), with θ the instance's slice of every parameter
    concatenated in ``named_parameters`` order — for ReLUOutput θ = (W (M, N) row-major, b (N,)),
    dim = M·N + N. The model's own forward is reused through ``torch.func.functional_call`` with
    the instance's parameters given a leading axis of 1, in ``dtype`` (float64 by default).
    ``x``: (B, N), or (1 or I, B, N) (the instance's slice is used).
    """
    if not (hasattr(model, "importance") and hasattr(model, "target") and hasattr(model, "n_instances")):
        raise ValueError("model must be a batched toymodels model (with importance, target and n_instances)")
    n_inst = int(model.n_instances)
    instance = check_int("instance", instance, 0, n_inst - 1)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a tensor, got {type(x).__name__}")
    if x.ndim == 3:
        if x.shape[0] not in (1, n_inst):
            raise ValueError(f"x has {x.shape[0]} instances; the model has {n_inst}")
        x = x[instance if x.shape[0] > 1 else 0]
    if x.ndim != 2:
        raise ValueError(f"x must be (B, N) or (I, B, N), got shape {tuple(x.shape)}")
    params = {name: p.detach()[instance].to(dtype) for name, p in model.named_parameters()}
    x = x.detach().to(device=next(iter(params.values())).device, dtype=dtype)
    imp_all = model.importance
    imp = imp_all[instance if imp_all.shape[0] > 1 else 0].detach().to(dtype)
    tgt = model.target(x[None]).to(dtype)
    flat, fl = flatten_params(params)

    def fn(theta: torch.Tensor) -> torch.Tensor:
        p = {k: v.unsqueeze(0) for k, v in fl.unflatten(theta).items()}
        out = functional_call(model, p, (x[None],))
        return (imp * (tgt - out).square()).mean()

    return InstanceLoss(fn, flat, fl)


def toy_model_loss_hessian(model: torch.nn.Module, instance: int, x: torch.Tensor,
                           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The explicit (dim, dim) loss Hessian of one instance (see :func:`toy_model_instance_loss`),
    by ``torch.func.hessian``. For small models: memory O(dim²)."""
    return toy_model_instance_loss(model, instance, x, dtype).hessian()
