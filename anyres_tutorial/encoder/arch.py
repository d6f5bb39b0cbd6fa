"""The shape of DINOv2 ViT-S/14 and what one forward costs: the numbers the model (``vit``), the attention
backends (``attention``), the weight converters (``weights``) and the benchmark share. Taught in
`patches_tokens_real_vit` (tokens) and `timing` (FLOPs)."""

from __future__ import annotations

import numbers

from ..checks import check_int_list, check_pair
from ..types import PATCH

DIM = 384
DEPTH = 12
HEADS = 6
MLP_HIDDEN = 1536
GRID = 37  # the position embedding is learned for a 37 x 37 grid = 518 x 518 px


def num_tokens(size) -> int:
    """Tokens the ViT sees for ``size`` = (width, height) pixels: 1 CLS + (w // 14) * (h // 14)."""
    w, h = check_pair("size", size, minimum=0)
    return 1 + (w // PATCH) * (h // PATCH)


def count_flops(lengths, *, dim: int = DIM, depth: int = DEPTH, mlp_hidden: int = MLP_HIDDEN,
                patch_size: int = PATCH, channels: int = 3) -> int:
    """FLOPs of a forward over images with these token lengths (each incl. CLS), matmuls counted as 2·m·n·k.

    Per image with L tokens (L - 1 patches):

    - patch embedding: 2 · (L-1) · (3·14·14) · D
    - per block: qkv 2·L·D·3D; attention scores q·kᵀ 2·L²·D and weights·v 2·L²·D (summed over heads);
      output projection 2·L·D²; MLP 2·L·D·4D · 2

    Attention is block-diagonal, so a packed sequence costs Σ L_i², exactly like running the images one by one
    (this counts useful work, not what a dense-mask kernel actually computes). LayerNorm, softmax, GELU,
    biases and the position-embedding resize are elementwise and ignored (< 1 %).
    """
    if isinstance(lengths, numbers.Integral):
        lengths = [lengths]
    total = 0
    for L in check_int_list("lengths (tokens per image, CLS included)", lengths, minimum=1):
        patch = 2 * (L - 1) * channels * patch_size**2 * dim
        block = 2 * L * dim * 3 * dim + 4 * L * L * dim + 2 * L * dim * dim + 4 * L * dim * mlp_hidden
        total += patch + depth * block
    return total


#: FLOPs of one (query, key) pair in every block: q·k and weights·v over all heads (2·D each), 12 blocks.
PAIR_FLOPS = 4 * DIM * DEPTH
#: FLOPs of one slot through the patch embedding and every linear layer (qkv, proj, MLP) of the 12 blocks.
SLOT_FLOPS = 2 * 3 * PATCH * PATCH * DIM + DEPTH * (2 * DIM * 3 * DIM + 2 * DIM * DIM + 4 * DIM * MLP_HIDDEN)
