"""Compressing many patch tokens into a few: a training-free stand-in for LLaVA-Mini's compressor.
Part of :mod:`anyres_tutorial.features`; taught in `llava_mini`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..checks import check_positive_int
from .maps import as_grid

# ---------------------------------------------------------------------------------------------------------
# `llava_mini`: compressing many patch tokens into a few (training-free stand-in for LLaVA-Mini)


@dataclass
class PoolResult:
    """Output of :func:`attention_pool`: ``pooled`` (Q, D) compressed tokens, ``weights`` (Q, rows, cols)
    attention of each query over the patch grid (each sums to 1), ``queries`` (Q, D), ``kind``."""

    pooled: torch.Tensor
    weights: torch.Tensor
    queries: torch.Tensor
    kind: str


def _kmeans(x: torch.Tensor, k: int, iters: int = 20) -> torch.Tensor:
    """Deterministic k-means on the rows of x (N, D): init at evenly spaced ranks along the first principal
    direction; returns centroids (k, D)."""
    xc = x - x.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(xc.double(), full_matrices=False)
    order = torch.argsort(xc.double() @ vh[0])
    idx = order[torch.linspace(0, x.shape[0] - 1, k).round().long()]
    cent = x[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(x, cent).argmin(1)  # (N,)
        for j in range(k):
            members = x[assign == j]
            if members.numel():
                cent[j] = members.mean(0)
    return cent


def _check_pool_args(features, num_queries, queries, cls, temperature, valid):
    """:func:`attention_pool`'s argument checks, in its order -> (grid (rows, cols, D), number of queries Q,
    valid mask (rows, cols) bool, the CLS query (1, D) or None, temperature)."""
    g = as_grid(features)
    rows, cols, d = g.shape
    q_n = check_positive_int("num_queries", num_queries)
    if q_n > rows * cols:
        raise ValueError(f"num_queries={q_n} exceeds the {rows * cols} patches")
    ok = torch.ones(rows, cols, dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool()
    if ok.shape != (rows, cols):
        raise ValueError(f"valid has shape {tuple(ok.shape)}, expected {(rows, cols)}")
    if not bool(ok.any()):
        raise ValueError("valid masks out every patch")
    cls_q = None
    if queries == "grid":
        c = math.isqrt(q_n)
        if c * c != q_n:
            raise ValueError(f"queries='grid' needs a square num_queries (C x C), got {q_n}")
        if c > min(rows, cols):
            raise ValueError(f"a {c}x{c} query grid does not fit a {rows}x{cols} map")
    elif queries == "kmeans":
        if q_n > int(ok.sum()):
            raise ValueError(f"num_queries={q_n} exceeds the {int(ok.sum())} valid patches")
    elif queries == "mean":
        if q_n != 1:
            raise ValueError("queries='mean' gives exactly one query; use num_queries=1")
    elif queries == "cls":
        if cls is None:
            raise ValueError("queries='cls' needs the CLS token: pass cls=feature_map.cls[0]")
        if q_n != 1:
            raise ValueError("queries='cls' gives exactly one query; use num_queries=1")
        cls_q = torch.as_tensor(cls, dtype=torch.float32).reshape(1, -1)
        if cls_q.shape[1] != d:
            raise ValueError(f"cls has {cls_q.shape[1]} channels, features have {d}")
    else:
        raise ValueError(f"unknown queries {queries!r}; choose 'grid', 'kmeans', 'mean' or 'cls'")
    t = math.sqrt(d) if temperature is None else float(temperature)
    if not t > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return g, q_n, ok, cls_q, t


def attention_pool(features, num_queries: int = 1, queries: str = "grid", cls=None,
                   temperature: float | None = None, valid=None) -> PoolResult:
    """Compress a (rows, cols, D) patch map into ``num_queries`` tokens by one cross-attention step:
    ``weights = softmax(q k^T / temperature)`` over the patches, ``pooled = weights @ v`` with k = v = the
    (layer-normed-free) patch features themselves.

    LLaVA-Mini (arXiv 2501.03895; code ``llavamini/model/llavamini_arch.py``, class ``Resampler``) does the
    same with C x C LEARNED queries (plus 2-D sin-cos position embeddings on queries and keys, LayerNorms and
    an 8-head ``nn.MultiheadAttention``), trained end to end with the LLM. We have no trained compressor, so
    the queries here are a documented training-free stand-in:

    - ``"grid"``:   C x C queries (``num_queries`` = C^2), each the mean feature of one cell of a C x C
                    split of the map -- a content-aware version of LLaVA-Mini's position-anchored queries;
    - ``"kmeans"``: the k-means centroids of the patch features (deterministic init) -- one query per
                    "kind of content";
    - ``"mean"``:   one query, the mean patch;
    - ``"cls"``:    one query, DINOv2's own CLS token (pass ``cls``) -- the ViT's built-in 1-token summary
                    used as a query.

    ``temperature`` defaults to sqrt(D) (scaled dot product). ``valid`` ((rows, cols) bool, optional): only
    these patches are keys/values (e.g. ``fmap.valid`` to leave padding out). The default attends over ALL
    patches, padding included, as LLaVA-Mini's code does (its compressor gets the stitched sub-image features
    with no mask). Taught in `llava_mini`.
    """
    g, q_n, ok, cls_q, t = _check_pool_args(features, num_queries, queries, cls, temperature, valid)
    rows, cols, d = g.shape
    flat, okf = g.reshape(-1, d), ok.reshape(-1)  # (N, D), (N,)
    if queries == "grid":  # the mean valid feature of each cell of a C x C split
        c = math.isqrt(q_n)
        m = ok.float()[None, None]  # (1, 1, rows, cols): mean over the valid patches of each cell
        num = F.adaptive_avg_pool2d((g.permute(2, 0, 1)[None] * m), (c, c))[0]  # (D, c, c)
        den = F.adaptive_avg_pool2d(m, (c, c))[0].clamp_min(1e-12)  # (1, c, c)
        q = (num / den).permute(1, 2, 0).reshape(q_n, d)
    elif queries == "kmeans":
        q = _kmeans(flat[okf], q_n)
    elif queries == "mean":
        q = flat[okf].mean(0, keepdim=True)
    else:  # "cls"
        q = cls_q
    logits = (q @ flat.T / t).masked_fill(~okf[None], float("-inf"))  # (Q, N); invalid patches get 0 weight
    w = torch.softmax(logits, dim=-1)  # (Q, N)
    pooled = w @ flat  # (Q, D)
    return PoolResult(pooled=pooled, weights=w.reshape(q_n, rows, cols), queries=q, kind=queries)
