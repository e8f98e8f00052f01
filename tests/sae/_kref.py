"""A dense autograd reference for the k-sparse SAEs (topk, batchtopk), with the aux-k term."""
import torch

from toymodels.sae import build_sae, decoder_orthogonality

from ._helpers import assert_same_grads, data, perturbed, tiny, twin


def dense_k_reference(sae, x, ks, batch):
    """Dense autograd TopK / BatchTopK loss with the aux-k term and the orthogonality penalty."""
    pre = sae.pre_activations(x)
    n_b = x.shape[1]
    fs = []
    for i, k in enumerate(ks):
        if batch:
            act = pre[i].clamp_min(0).flatten()
            v, idx = act.topk(n_b * k)
            fs.append(torch.zeros_like(act).scatter(0, idx, v).view_as(pre[i]))
        else:
            v, idx = pre[i].topk(k, dim=-1)
            fs.append(torch.zeros_like(pre[i]).scatter(-1, idx, torch.relu(v)))
    x_hat = sae.decode(torch.stack(fs))
    mse = (x_hat - x).square().sum(dim=(1, 2)) / n_b
    dead = sae.dead_latents()
    masked = pre.masked_fill(~dead[:, None, :], float("-inf"))
    v, idx = masked.topk(sae.config.effective_aux_k, dim=-1)
    f_aux = torch.zeros_like(pre).scatter(-1, idx, torch.relu(torch.where(torch.isfinite(v), v, torch.zeros_like(v))))
    e = (x - x_hat).detach()
    has_dead = dead.any(dim=1).to(x.dtype)  # an instance without dead latents has no aux term
    aux = sae.config.aux_coefficient * has_dead * (e - torch.bmm(f_aux, sae.W_dec)).square().sum(dim=(1, 2)) / n_b
    return mse + aux + sae.config.decoder_orthogonality * decoder_orthogonality(sae.W_dec)


def check_sparse_backward(arch: str, path: str) -> None:
    """The hand-derived sparse backward, and the sparse autograd functions behind loss_terms,
    both equal dense autograd (float64)."""
    cfg = tiny(arch, n_instances=3, k=(1, 2, 4), aux_k=3, dead_window=3, decoder_orthogonality=0.2)
    a = perturbed(build_sae(cfg, seed=2).double())
    with torch.no_grad():
        a.b_enc_IF.add_(0.3)
        a.steps_since_fired_IF[:2, :5] = 10  # five dead latents in instances 0 and 1: the aux-k loss is on
        a.steps_since_fired_IF[2] = 0  # none in instance 2: no aux term there
    b = twin(a)
    x = data(1, 7, 6, dtype=torch.float64)
    if path == "hand-derived":
        loss_a = a.loss_and_grad(x)
    else:
        total = a.loss_terms(x, train=True)["total"]
        total.sum().backward()
        loss_a = total.detach()
    ref = dense_k_reference(b, x, [1, 2, 4], batch=arch == "batchtopk")
    ref.sum().backward()
    torch.testing.assert_close(loss_a, ref.detach(), rtol=1e-12, atol=1e-12)
    assert_same_grads(a, b)
    for name, q in b.named_parameters():
        assert q.grad.abs().sum() > 0, name
