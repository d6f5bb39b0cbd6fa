"""Checkpoint layouts -> the parameter names of :class:`~anyres_tutorial.encoder.vit.DinoViT`.

``load_dinov2`` picks the converter by the weights' ``layout`` (:mod:`.weights`): transformers' Dinov2Model
names (``"hf"``: the offline cache, exported files, ``facebook/dinov2-small``) or timm's (``"timm"``).
Taught in `patches_tokens_real_vit`.
"""

from __future__ import annotations

import torch

from .arch import DEPTH


def state_dict_from_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers Dinov2Model names (4.x ``attention.attention.query`` or 5.x ``attention.q_proj``) -> ours.

    q, k, v are fused into one ``qkv`` Linear; ``mask_token`` (only for masked-image training) is dropped.
    """
    sd = {k.removeprefix("dinov2."): v for k, v in sd.items()}

    def get(name):
        if name not in sd:
            raise KeyError(f"Dinov2 checkpoint is missing {name!r}")
        return sd[name]

    def pick(*names):
        for n in names:
            if n in sd:
                return sd[n]
        raise KeyError(f"Dinov2 checkpoint has none of {names}")

    out = {
        "patch_embed.weight": get("embeddings.patch_embeddings.projection.weight"),
        "patch_embed.bias": get("embeddings.patch_embeddings.projection.bias"),
        "cls_token": get("embeddings.cls_token"),
        "pos_embed": get("embeddings.position_embeddings"),
        "norm.weight": get("layernorm.weight"),
        "norm.bias": get("layernorm.bias"),
    }
    for i in range(DEPTH):
        p, a = f"encoder.layer.{i}.", f"encoder.layer.{i}.attention."
        b = f"blocks.{i}."
        for part in ("weight", "bias"):
            out[b + f"attn.qkv.{part}"] = torch.cat([
                pick(a + f"attention.query.{part}", a + f"q_proj.{part}"),
                pick(a + f"attention.key.{part}", a + f"k_proj.{part}"),
                pick(a + f"attention.value.{part}", a + f"v_proj.{part}"),
            ])
            out[b + f"attn.proj.{part}"] = pick(a + f"output.dense.{part}", a + f"o_proj.{part}")
            for norm in ("norm1", "norm2"):
                out[b + f"{norm}.{part}"] = get(p + f"{norm}.{part}")
            for fc in ("fc1", "fc2"):
                out[b + f"mlp.{fc}.{part}"] = get(p + f"mlp.{fc}.{part}")
        out[b + "ls1"] = get(p + "layer_scale1.lambda1")
        out[b + "ls2"] = get(p + "layer_scale2.lambda1")
    return out


def state_dict_from_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ``vit_small_patch14_dinov2`` names -> ours (timm fuses qkv too; LayerScale is ``lsN.gamma``)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("head.") or k in ("mask_token", "reg_token"):
            continue  # no classifier head / registers in this model
        k = k.replace("patch_embed.proj.", "patch_embed.")
        k = k.replace(".ls1.gamma", ".ls1").replace(".ls2.gamma", ".ls2")
        out[k] = v
    return out
