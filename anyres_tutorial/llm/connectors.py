"""Connectors: how each method turns vision-encoder features into the embeddings the language model reads.

Taught in `what_the_language_model_receives`. One small ``nn.Module`` per method, with the reference's
*shapes and layout* and **random initialisation** (no released weights are loaded: the lesson is which
tensor goes where, not what the numbers mean). Dimensions default to small values so that everything runs in
a blink on a CPU; the reference dimensions are given in each docstring.

Every connector's ``forward`` takes the encoder's patch features of one image and returns ``(L, D)``: one
row per LLM position the image occupies, in sequence order, including newline / separator embeddings; ``L``
equals ``tiling.plan(...).num_tokens`` (or the packing rule's count for Qwen2-VL and Pixtral). Pass
``trace=[]`` to collect ``(step, shape)`` pairs along the way (the shape-flow diagram draws them).

Reference code read for the shapes: LLaVA-VL/LLaVA-NeXT ``llava/model/multimodal_projector/builder.py``
(``mlp2x_gelu``) and ``llava_arch.py`` (``image_newline``); X-PLUG/mPLUG-Owl's visual abstractor
(``query_embeds``, ``visual_fc``, ``vit_eos``) used by UReader (mPLUG-DocOwl) with its crop position
embedding; deepseek-ai/DeepSeek-VL2 ``modeling_deepseek_vl_v2.py`` (``downsample_mlp_gelu``,
``image_newline``, ``view_seperator``); OpenGVLab/InternVL ``pixel_shuffle`` + ``mlp1``; transformers
``models/qwen2_vl`` (``PatchMerger``); transformers ``models/pixtral`` / ``llava`` (projector,
``[IMG_BREAK]`` / ``[IMG_END]``); ictnlp/LLaVA-Mini ``llavamini_arch.py`` (``Resampler`` compressor,
``prefusion_layers``). Widths are checked when a connector is built (:func:`check_dims`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_int
from ..tiling import llava_next
from ..tiling.protocol import encoder_order

#: Small default widths (the reference models use e.g. 1024 -> 4096; see each class).
VISION_DIM, LLM_DIM = 32, 48
#: Largest accepted width (the references go up to 8192, Qwen2-VL-72B's LLM).
MAX_DIM = 16384


def check_dims(name: str, vision_dim, llm_dim, vision_multiple: int = 1, llm_multiple: int = 1) -> None:
    """Both widths integers in [1, MAX_DIM], divisible by the connector's head counts; else ValueError."""
    for arg, value, multiple in (("vision_dim", vision_dim, vision_multiple),
                                 ("llm_dim", llm_dim, llm_multiple)):
        check_int(arg, value, 1, MAX_DIM)
        if value % multiple:
            raise ValueError(f"{name}: {arg} must be a multiple of {multiple} (its attention heads need it), "
                             f"got {value}")


def _note(trace, step: str, x: torch.Tensor) -> None:
    if trace is not None:
        trace.append((step, tuple(x.shape)))


def _side(plan) -> int:
    """Patches per side of one encoder image: tile_size // patch_size (24, 16, 27, 32 for 336/224/384/448)."""
    return plan.tile_size // plan.patch_size


def _check_features(feats: torch.Tensor, n: int, per: int, name: str) -> None:
    if not isinstance(feats, torch.Tensor) or feats.dim() != 3 or feats.shape[:2] != (n, per):
        got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise ValueError(f"{name}: expected ({n}, {per}, D) features (encoder images, patches, width), "
                         f"got {got}")


class MLP2xGELU(nn.Module):
    """LLaVA-1.5's ``mlp2x_gelu`` projector: Linear -> GELU -> Linear, applied to every token.
    Reference: CLIP ViT-L/14 1024 -> 4096 (Vicuna-7B)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in_dim) -> (..., out_dim)
        return self.net(x)


def _check_patches(patches, rows: int, cols: int) -> None:
    if not isinstance(patches, torch.Tensor) or patches.dim() != 2 or patches.shape[0] != rows * cols:
        got = tuple(patches.shape) if isinstance(patches, torch.Tensor) else type(patches).__name__
        raise ValueError(f"expected ({rows * cols}, Dv) packed patches for a {rows}x{cols} grid, got {got}")


def stitch(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """(rows*cols, s*s, D) tile features in row-major tile order -> one (rows*s, cols*s, D) map."""
    n, per, d = x.shape
    s = int(round(per ** 0.5))
    if n != rows * cols or s * s != per:
        raise ValueError(f"cannot stitch {tuple(x.shape)} into {rows}x{cols} tiles of square patch grids")
    return x.view(rows, cols, s, s, d).permute(0, 2, 1, 3, 4).reshape(rows * s, cols * s, d)


def append_newline(grid: torch.Tensor, newline: torch.Tensor) -> torch.Tensor:
    """(H, W, D) map + one learned (D,) newline vector after every row -> (H * (W + 1), D)."""
    h, _, d = grid.shape
    return torch.cat([grid, newline.view(1, 1, d).expand(h, 1, d)], dim=1).reshape(-1, d)


class MLPConnector(nn.Module):
    """The generic connector (``template``): every patch of every encoder image through ``MLP2xGELU``.
    (N, g*g, Dv) -> (N*g*g, D)."""

    def __init__(self, vision_dim: int = VISION_DIM, llm_dim: int = LLM_DIM):
        super().__init__()
        check_dims("MLPConnector", vision_dim, llm_dim)
        self.proj = MLP2xGELU(vision_dim, llm_dim)

    def forward(self, feats: torch.Tensor, plan, trace: list | None = None) -> torch.Tensor:
        _check_features(feats, plan.num_images, _side(plan) ** 2, "MLPConnector")
        _note(trace, "encoder patches (N, g·g, Dv)", feats)
        x = self.proj(feats)  # (N, g*g, D)
        _note(trace, "MLP (N, g·g, D)", x)
        x = x.reshape(-1, x.shape[-1])  # (N*g*g, D)
        _note(trace, "LLM embeddings (L, D)", x)
        return x


class LlavaNextConnector(nn.Module):
    """LLaVA-NeXT: ``mlp2x_gelu`` on every tile's 24x24 patches (CLS dropped), then ``spatial_unpad``: the
    global view's 576 tokens, the tiles stitched into one (rows*24, cols*24) map, unpadded, and the learned
    ``image_newline`` vector appended to every row. Reference: 1024 -> 4096, newline (4096,).

    (1 + rows*cols, 576, Dv) -> (576 + h' * (w' + 1), D)."""

    def __init__(self, vision_dim: int = VISION_DIM, llm_dim: int = LLM_DIM):
        super().__init__()
        check_dims("LlavaNextConnector", vision_dim, llm_dim)
        self.proj = MLP2xGELU(vision_dim, llm_dim)
        self.image_newline = nn.Parameter(torch.randn(llm_dim) / llm_dim ** 0.5)

    def forward(self, feats: torch.Tensor, plan, trace: list | None = None) -> torch.Tensor:
        rows, cols = plan.grid
        _check_features(feats, plan.num_images, _side(plan) ** 2, "LlavaNextConnector")
        _note(trace, "CLIP patches, CLS dropped (1 + tiles, 576, Dv)", feats)
        x = self.proj(feats)  # (1 + rows*cols, 576, D); the global view comes first
        _note(trace, "mlp2x_gelu (1 + tiles, 576, D)", x)
        base, tiles = x[0], stitch(x[1:], rows, cols)  # (576, D), (rows*24, cols*24, D)
        _note(trace, "tiles stitched (rows·24, cols·24, D)", tiles)
        top, bottom, left, right = llava_next.unpad_slice(plan)
        tiles = tiles[top:bottom, left:right]  # (h', w', D)
        _note(trace, "unpadded (h', w', D)", tiles)
        out = torch.cat([base, append_newline(tiles, self.image_newline)])  # (576 + h'(w'+1), D)
        _note(trace, "global + rows with image_newline (L, D)", out)
        return out


class UReaderAbstractor(nn.Module):
    """UReader (mPLUG-DocOwl) = mPLUG-Owl's visual abstractor per crop + UReader's crop position embedding.

    64 learned ``query_embeds`` cross-attend to the crop's 257 ViT tokens (CLIP-L/14 at 224 px: 16x16 patches
    + CLS). Crop position, as the release config does it (``patch_pos_embed_type: post``): two learned tables
    of ``cut_num`` = 15 rows at the abstractor's width, ``cut_patch_embedding_h`` / ``_w``, give
    ``(h[row] + w[col]) * 0.5``, added to the 64 query outputs *before* ``visual_fc`` (the global view uses
    index ``anchor_max``). ``visual_fc`` maps to the LLM width, then one learned ``vit_eos`` vector is
    appended - the "+1" of the 65 tokens per image; it carries no position. Reference: 6 abstractor layers of
    width 1024 (= CLIP-L's width; here the abstractor runs at Dv), LLM 4096; one attention layer here.
    (The code's other setting, ``pre``, adds the embedding to the ViT tokens and abstracts all crops of an
    image together; it is not used by the release config and not built here.)
    (1 + crops, 257, Dv) -> ((1 + crops) * 65, D)."""

    CUT_NUM = 15  # rows of each crop position table (``self.cut_num = 15``, hard-coded in the reference)

    def __init__(self, vision_dim: int = VISION_DIM, llm_dim: int = LLM_DIM, num_queries: int = 64,
                 heads: int = 4):
        super().__init__()
        check_dims("UReaderAbstractor", vision_dim, llm_dim, vision_multiple=heads)
        self.query_embeds = nn.Parameter(torch.randn(num_queries, vision_dim) * 0.02)
        self.attn = nn.MultiheadAttention(vision_dim, heads, batch_first=True)
        self.cut_patch_embedding_h = nn.Embedding(self.CUT_NUM, vision_dim)  # crop row, abstractor width
        self.cut_patch_embedding_w = nn.Embedding(self.CUT_NUM, vision_dim)  # crop column
        self.visual_fc = nn.Linear(vision_dim, llm_dim)
        self.vit_eos = nn.Parameter(torch.randn(1, 1, llm_dim) * 0.02)

    @classmethod
    def check_plan(cls, plan) -> None:
        """ValueError when a crop position does not fit the 15-row tables (anchors with a side over 14)."""
        top = max(max(p) for p in plan.details["crop_positions"])
        if top >= cls.CUT_NUM:
            raise ValueError(f"UReader's crop position tables have {cls.CUT_NUM} rows (cut_num in "
                             f"mplug_owl/modeling_mplug_owl.py), but this plan's positions reach {top} "
                             f"(anchor_max = {plan.details['anchor_max']}); choose anchors whose nh and nw "
                             f"are at most {cls.CUT_NUM - 1}, e.g. anchors='release'")

    def forward(self, feats: torch.Tensor, plan, trace: list | None = None) -> torch.Tensor:
        n = plan.num_images
        _check_features(feats, n, _side(plan) ** 2 + 1, "UReaderAbstractor")
        self.check_plan(plan)
        pos = torch.tensor(plan.details["crop_positions"], dtype=torch.long)  # (N, 2): global first
        assert pos.shape == (n, 2), "one crop position per encoder image"
        _note(trace, "CLIP tokens incl. CLS (1 + crops, 257, Dv)", feats)
        q = self.query_embeds.unsqueeze(0).expand(n, -1, -1)  # (N, 64, Dv)
        x, _ = self.attn(q, feats, feats)  # (N, 64, Dv): 64 queries read each crop
        _note(trace, "64 queries cross-attend (1 + crops, 64, Dv)", x)
        h, w = self.cut_patch_embedding_h(pos[:, 0]), self.cut_patch_embedding_w(pos[:, 1])  # (N, Dv) each
        crop = (h + w) * 0.5  # (N, Dv)
        x = x + crop.unsqueeze(1)  # (N, 64, Dv): every query output of a crop gets the crop's position
        _note(trace, "+ (row + col) / 2 crop position (1 + crops, 64, Dv)", x)
        x = self.visual_fc(x)  # (N, 64, D)
        x = torch.cat([x, self.vit_eos.expand(n, 1, -1)], dim=1)  # (N, 65, D): vit_eos after, no position
        _note(trace, "visual_fc + vit_eos (1 + crops, 65, D)", x)
        out = x.reshape(-1, x.shape[-1])  # (N*65, D)
        _note(trace, "LLM embeddings (L, D)", out)
        return out


class DeepSeekVL2Connector(nn.Module):
    """DeepSeek-VL2's ``downsample_mlp_gelu``: each view's 27x27 SigLIP grid is padded to 28x28, every 2x2
    neighbourhood is concatenated (``F.unfold``) -> 14x14 tokens of width 4*Dv, then an MLP; the global view
    gets the learned ``image_newline`` after each row, one learned ``view_seperator`` (the reference's
    spelling) follows, then the stitched local tiles with a newline per row. Reference: SigLIP-SO400M 1152,
    4*1152 -> LLM width. (1 + tiles, 729, Dv) -> (14*15 + 1 + 14*rows*(14*cols + 1), D)."""

    def __init__(self, vision_dim: int = VISION_DIM, llm_dim: int = LLM_DIM, ratio: int = 2):
        super().__init__()
        check_dims("DeepSeekVL2Connector", vision_dim, llm_dim)
        self.ratio = ratio
        self.proj = nn.Sequential(nn.Linear(vision_dim * ratio * ratio, llm_dim), nn.GELU(),
                                  nn.Linear(llm_dim, llm_dim))
        self.image_newline = nn.Parameter(torch.randn(llm_dim) / llm_dim ** 0.5)
        self.view_seperator = nn.Parameter(torch.randn(llm_dim) / llm_dim ** 0.5)

    def downsample(self, feats: torch.Tensor, g: int) -> torch.Tensor:
        """(N, g*g, Dv) -> (N, s*s, r*r*Dv) with s = ceil(g / r): pad right/bottom, then r x r unfold."""
        n, _, d = feats.shape
        x = feats.transpose(1, 2).reshape(n, d, g, g)  # (N, Dv, g, g)
        pad = (-g) % self.ratio
        x = F.pad(x, (0, pad, 0, pad))  # (N, Dv, g + pad, g + pad)
        x = F.unfold(x, kernel_size=self.ratio, stride=self.ratio)  # (N, r*r*Dv, s*s)
        return x.transpose(1, 2)  # (N, s*s, r*r*Dv)

    def forward(self, feats: torch.Tensor, plan, trace: list | None = None) -> torch.Tensor:
        rows, cols = plan.grid
        g = _side(plan)
        _check_features(feats, plan.num_images, g * g, "DeepSeekVL2Connector")
        _note(trace, "SigLIP patches (1 + tiles, 27·27, Dv)", feats)
        x = self.downsample(feats, g)  # (N, 14*14, 4*Dv)
        _note(trace, "pad 28×28 + 2×2 unfold (1 + tiles, 14·14, 4·Dv)", x)
        x = self.proj(x)  # (N, 196, D)
        _note(trace, "MLP (1 + tiles, 14·14, D)", x)
        s = int(round(x.shape[1] ** 0.5))
        glob = append_newline(x[0].view(s, s, -1), self.image_newline)  # (14*15, D)
        local = append_newline(stitch(x[1:], rows, cols), self.image_newline)  # (14*rows*(14*cols+1), D)
        out = torch.cat([glob, self.view_seperator.view(1, -1), local])  # (L, D)
        _note(trace, "global + newlines, view_seperator, local + newlines (L, D)", out)
        return out


PS_VERSIONS = ("v2", "v1")


def pixel_shuffle(x: torch.Tensor, scale: float = 0.5, ps_version: str = "v2") -> torch.Tensor:
    """InternVL's space-to-depth: (N, H, W, C) -> (N, H*scale, W*scale, C/scale^2); with 0.5 every 2x2
    block of patches becomes one token 4x as wide, its channels ordered (row in block, col in block, C).

    The reference swaps the two spatial axes on the way. ``ps_version="v2"`` (the training arguments'
    default) swaps them back: tokens come out row-major, as here. ``"v1"`` does not (the code warns that this
    "results in a transposed image"): the same tokens reach the LLM column by column, (N, W*scale, H*scale,
    C/scale^2). Shapes of square tiles do not change; the order does, and trained weights expect theirs."""
    check_choice("ps_version", ps_version, PS_VERSIONS)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"pixel_shuffle needs (N, H, W, C) features, got {got}")
    k = round(1 / scale) if isinstance(scale, (int, float)) and scale > 0 else 0
    if k < 1 or abs(k * scale - 1) > 1e-9:
        raise ValueError(f"scale must be 1/k for a whole k (0.5 in InternVL), got {scale!r}")
    n, h, w, c = x.shape
    if h % k or w % k:
        raise ValueError(f"pixel_shuffle({scale}) needs sides divisible by {k}, got {h}x{w}")
    x = x.view(n, h // k, k, w // k, k, c).permute(0, 1, 3, 2, 4, 5)  # (N, H/k, W/k, k, k, C)
    x = x.reshape(n, h // k, w // k, k * k * c)  # (N, H/k, W/k, k*k*C)
    return x.transpose(1, 2) if ps_version == "v1" else x  # v1: (N, W/k, H/k, k*k*C)


class InternVLConnector(nn.Module):
    """InternVL: pixel shuffle (0.5) of every 448-px tile's 32x32 InternViT grid -> 16x16 tokens of width
    4*Dv, then ``mlp1`` = LayerNorm -> Linear -> GELU -> Linear. Reference: InternViT-300M 1024 (x4 = 4096)
    -> LLM width. (tiles [+ thumbnail], 1024, Dv) -> (N * 256, D), in encoder order (thumbnail last).
    ``ps_version``: see :func:`pixel_shuffle` ("v2" row-major tokens, "v1" column-major)."""

    def __init__(self, vision_dim: int = VISION_DIM, llm_dim: int = LLM_DIM, scale: float = 0.5,
                 ps_version: str = "v2"):
        super().__init__()
        check_dims("InternVLConnector", vision_dim, llm_dim)
        self.scale, self.ps_version = scale, check_choice("ps_version", ps_version, PS_VERSIONS)
        wide = int(vision_dim / scale ** 2)
        self.mlp1 = nn.Sequential(nn.LayerNorm(wide), nn.Linear(wide, llm_dim), nn.GELU(),
                                  nn.Linear(llm_dim, llm_dim))

    def forward(self, feats: torch.Tensor, plan, trace: list | None = None) -> torch.Tensor:
        g = _side(plan)
        _check_features(feats, plan.num_images, g * g, "InternVLConnector")
        _note(trace, "InternViT patches, CLS dropped (N, 32·32, Dv)", feats)
        x = feats.view(feats.shape[0], g, g, -1)  # (N, 32, 32, Dv)
        x = pixel_shuffle(x, self.scale, self.ps_version)  # (N, 16, 16, 4*Dv)
        _note(trace, f"pixel shuffle 0.5, {self.ps_version} (N, 16, 16, 4·Dv)", x)
        x = self.mlp1(x.flatten(1, 2))  # (N, 256, D)
        _note(trace, "mlp1 (N, 256, D)", x)
        out = x.reshape(-1, x.shape[-1])  # (N*256, D)
        _note(trace, "LLM embeddings (L, D)", out)
        return out


def rope(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """LLaMA's rotary position embedding of (H, S, d) queries or keys at positions 0..S-1 (rotate-half)."""
    _, s, d = x.shape
    inv_freq = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float32) / d)  # (d/2,)
    angles = torch.arange(s, dtype=torch.float32)[:, None] * inv_freq  # (S, d/2)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()  # (S, d)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class DecoderLayer(nn.Module):
    """A pre-norm causal self-attention + MLP block with RoPE: a stand-in for one LLaMA decoder layer
    (LayerNorm and a GELU MLP instead of RMSNorm and SwiGLU). (S, D) -> (S, D)."""

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        assert dim % (2 * heads) == 0, "the width must split into heads of even width"
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(s, 3, self.heads, d // self.heads).permute(1, 2, 0, 3)
        q, k = rope(q), rope(k)  # (H, S, d/H): positions 0..S-1, so the order of the tokens matters
        a = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]  # (H, S, d/H)
        x = x + self.out(a.transpose(0, 1).reshape(s, d))  # each token saw its past only
        return x + self.mlp(self.norm2(x))


class LlavaMiniConnector(nn.Module):
    """LLaVA-Mini: compression + modality pre-fusion (``encode_images_mini``).

    The N*N blocks' features are stitched into one (N*24)^2 map, flattened row-major over the *whole* map
    (``view(b, N, N, 24, 24, d).transpose(2, 3)``). Compression: C*C learned queries (+ 2-D sin-cos positions
    and LayerNorms in the reference ``Resampler``) cross-attend to that map -> C*C tokens, then the LLaVA MLP;
    the full image (last encoder image, N > 1) is never compressed. Pre-fusion: causal decoder layers with
    RoPE (4 LLaMA layers in the reference, 1 here) run over [the stitched map's (N*24)^2 tokens, the full
    image's 576 (N > 1), the C*C compressed tokens, the T text embeddings], all through the MLP. The reference
    keeps *two* slices of the output: ``x[-T-C*C:-T]``, the visual tokens the LLM reads, and ``x[-T:]``, the
    fused text. Being causal, the visual tokens see every image token but no text. Reference: vision 1024,
    LLM 4096.

    ``fuse(feats (N*N [+1], 576, Dv), plan, text (T, D))`` -> (visual ``(C*C, D)``, fused text ``(T, D)``);
    ``compress`` gives the compressor's output (the pre-fusion *input*); ``forward`` returns the visual tokens
    and keeps the fused text in ``self.fused_text``."""

    def __init__(self, vision_dim: int = VISION_DIM, llm_dim: int = LLM_DIM, compressor_size: int = 1,
                 prefusion_layers: int = 1, heads: int = 2):
        super().__init__()
        check_dims("LlavaMiniConnector", vision_dim, llm_dim, vision_multiple=heads, llm_multiple=2 * heads)
        self.queries = nn.Parameter(torch.randn(compressor_size ** 2, vision_dim) * 0.02)
        self.attn = nn.MultiheadAttention(vision_dim, heads, batch_first=True)
        self.proj = MLP2xGELU(vision_dim, llm_dim)
        self.prefusion = nn.ModuleList(DecoderLayer(llm_dim, heads) for _ in range(prefusion_layers))
        self.fused_text = None

    def stitched(self, feats: torch.Tensor, plan) -> torch.Tensor:
        """The N*N blocks as one map, row-major over the whole map: ((N*24)^2, Dv) (N = 1: the image)."""
        n = plan.grid.rows
        c2 = self.queries.shape[0]
        if c2 != plan.num_tokens:
            raise ValueError(f"built for {c2} queries but the plan has {plan.num_tokens} tokens")
        _check_features(feats, plan.num_images, _side(plan) ** 2, "LlavaMiniConnector")
        return stitch(feats[: n * n], n, n).reshape(-1, feats.shape[-1])  # ((N*24)^2, Dv)

    def compress(self, feats: torch.Tensor, plan) -> torch.Tensor:
        """The compressor: C*C queries read the stitched map, then the MLP: (C*C, D), the pre-fusion input."""
        hd = self.stitched(feats, plan).unsqueeze(0)  # (1, (N*24)^2, Dv)
        comp, _ = self.attn(self.queries.unsqueeze(0), hd, hd)  # (1, C*C, Dv)
        return self.proj(comp[0])  # (C*C, D)

    def fuse(self, feats: torch.Tensor, plan, text: torch.Tensor | None = None,
             trace: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n = plan.grid.rows
        hd = self.stitched(feats, plan)  # ((N*24)^2, Dv)
        d = self.proj.net[-1].out_features
        text = torch.zeros(0, d) if text is None else text  # (T, D)
        if text.dim() != 2 or text.shape[1] != d:
            raise ValueError(f"text must be (T, {d}) embeddings at the LLM width, got {tuple(text.shape)}")
        _note(trace, "CLIP patches, blocks + full image (N²+1, 576, Dv)" if n > 1 else
              "CLIP patches (1, 576, Dv)", feats)
        _note(trace, "blocks stitched, one map ((N·24)², Dv)", hd)
        comp = self.compress(feats, plan)  # (C*C, D)
        _note(trace, "C² queries + MLP (C², D)", comp)
        images = [self.proj(hd)] + ([self.proj(feats[n * n])] if n > 1 else [])  # stitched map, full image
        x = torch.cat([*images, comp, text])  # (S, D), S = (N*24)^2 [+ 576] + C*C + T
        _note(trace, "pre-fusion over [map, full image, compressed, text] (S, D)" if n > 1 else
              "pre-fusion over [image, compressed, text] (S, D)", x)
        for layer in self.prefusion:
            x = layer(x)  # (S, D), causal
        s, t, c2 = x.shape[0], text.shape[0], comp.shape[0]
        visual, fused_text = x[s - t - c2: s - t], x[s - t:]  # (C*C, D), (T, D)
        _note(trace, "LLM visual tokens = outputs at the C² positions (C², D)", visual)
        if t:
            _note(trace, "fused text = outputs at the T text positions (T, D)", fused_text)
        return visual, fused_text

    def forward(self, feats: torch.Tensor, plan, text: torch.Tensor | None = None,
                trace: list | None = None) -> torch.Tensor:
        visual, self.fused_text = self.fuse(feats, plan, text, trace)
        return visual

class Qwen2VLPatchMerger(nn.Module):
    """Qwen2-VL's ``PatchMerger``: LayerNorm each packed ViT patch, concatenate every 2x2 neighbourhood (the
    processor already emits patches in 2x2-block order) and run an MLP 4*Dv -> 4*Dv -> D. That is why a
    packed image's LLM tokens are patches / 4. Reference: Dv = 1280, D = 1536 / 3584 / 8192. Upstream of it,
    the processor repeats a still image to ``temporal_patch_size`` = 2 frames, so each patch vector is
    3·2·14·14 = 1,176 numbers, and the ViT's patch embedding is a Conv3d with a (2, 14, 14) kernel.

    ``forward(patches (rows*cols, Dv) row-major, patch grid (rows, cols))`` -> ``(rows/2 * cols/2, D)``."""

    def __init__(self, vision_dim: int = VISION_DIM, llm_dim: int = LLM_DIM, merge: int = 2):
        super().__init__()
        check_dims("Qwen2VLPatchMerger", vision_dim, llm_dim)
        self.merge = merge
        self.ln_q = nn.LayerNorm(vision_dim, eps=1e-6)
        wide = vision_dim * merge * merge
        self.mlp = nn.Sequential(nn.Linear(wide, wide), nn.GELU(), nn.Linear(wide, llm_dim))

    def block_order(self, patches: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """Row-major (rows*cols, Dv) -> the processor's order: 2x2 blocks row-major, each block row-major."""
        m = self.merge
        if rows % m or cols % m:
            raise ValueError(f"the patch grid {rows}x{cols} must be divisible by {m}")
        d = patches.shape[-1]
        x = patches.view(rows // m, m, cols // m, m, d).permute(0, 2, 1, 3, 4)  # (R, C, m, m, Dv)
        return x.reshape(-1, d)

    def forward(self, patches: torch.Tensor, grid, trace: list | None = None) -> torch.Tensor:
        rows, cols = grid
        _check_patches(patches, rows, cols)
        _note(trace, "packed ViT patches (h·w, Dv)", patches)
        x = self.ln_q(self.block_order(patches, rows, cols))  # (h*w, Dv), 2x2 blocks contiguous
        x = x.view(-1, x.shape[-1] * self.merge ** 2)  # (h*w/4, 4*Dv)
        _note(trace, "2×2 merge (h·w/4, 4·Dv)", x)
        out = self.mlp(x)  # (h*w/4, D)
        _note(trace, "MLP = LLM embeddings (h·w/4, D)", out)
        return out


class PixtralConnector(nn.Module):
    """Pixtral-12B: a two-layer GELU projector per 16-px patch; the LLM reads the patch rows with an
    ``[IMG_BREAK]`` after each row and ``[IMG_END]`` instead of the last break (both are ordinary entries
    of the LLM's embedding table; stand-in vectors here). Reference: vision 1024, LLM 5120.

    ``forward(patches (rows*cols, Dv) row-major, grid (rows, cols))`` -> ``(rows * (cols + 1), D)``."""

    def __init__(self, vision_dim: int = VISION_DIM, llm_dim: int = LLM_DIM):
        super().__init__()
        check_dims("PixtralConnector", vision_dim, llm_dim)
        self.proj = MLP2xGELU(vision_dim, llm_dim)
        self.img_break = nn.Parameter(torch.randn(llm_dim) / llm_dim ** 0.5)
        self.img_end = nn.Parameter(torch.randn(llm_dim) / llm_dim ** 0.5)

    def forward(self, patches: torch.Tensor, grid, trace: list | None = None) -> torch.Tensor:
        rows, cols = grid
        _check_patches(patches, rows, cols)
        _note(trace, "packed ViT patches (h·w, Dv)", patches)
        x = self.proj(patches).view(rows, cols, -1)  # (rows, cols, D)
        _note(trace, "projector (h, w, D)", x)
        d = x.shape[-1]
        ends = self.img_break.view(1, 1, d).expand(rows, 1, d).clone()  # (rows, 1, D)
        ends[-1, 0] = self.img_end
        out = torch.cat([x, ends], dim=1).reshape(-1, d)  # (rows*(cols+1), D)
        _note(trace, "rows + [IMG_BREAK] / [IMG_END] (L, D)", out)
        return out


def encoder_features(plan, dim: int = VISION_DIM, cls: bool = False, seed: int = 0) -> torch.Tensor:
    """Random stand-ins for the encoder's patch features of ``plan``: (num_images, g*g [+1 CLS], dim), in
    the encoder's order (``protocol.encoder_order``). Random, because the connectors here are untrained."""
    g = _side(plan)
    check_int("dim", dim, 1, MAX_DIM)
    assert len(encoder_order(plan)) == plan.num_images, "one feature block per encoder image"
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(plan.num_images, g * g + int(cls), dim, generator=gen)  # (N, g*g [+1], dim)


__all__ = ["VISION_DIM", "LLM_DIM", "MLP2xGELU", "MLPConnector", "LlavaNextConnector", "UReaderAbstractor",
           "DeepSeekVL2Connector", "InternVLConnector", "LlavaMiniConnector", "Qwen2VLPatchMerger",
           "PixtralConnector", "pixel_shuffle", "stitch", "append_newline", "encoder_features"]
