"""Bad input gets a clear error naming the argument, before any long work: packed attention with non-finite
pixels, training and fine-tuning hyper-parameters and targets, weights files and cache locations, sizes that
cannot finish, and the benchmark's output. Each case must fail fast (seconds), never deep inside torch."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import refused

from anyres_tutorial import bench, finetune, training
from anyres_tutorial import packing as P
from anyres_tutorial.encoder import vit
from anyres_tutorial.encoder import weights as W

# ----------------------------------------------------------------------------------------------------------
# non-finite pixels never reach the other images of a packed sequence


def test_normalize_refuses_nan_and_inf():
    refused(ValueError, "NaN or infinite", vit.normalize, torch.full((3, 14, 14), float("nan")))
    x = torch.rand(3, 14, 14)
    x[0, 0, 0] = float("inf")
    refused(ValueError, "NaN or infinite", vit.normalize, x)


@pytest.mark.parametrize("attention", ["dense_mask", "sdpa_segments", "loop"])
def test_a_nan_image_is_refused_by_name_in_a_list_and_in_a_batch(dinov2, attention):
    good = torch.zeros(3, 28, 28)
    bad = torch.zeros(3, 14, 42)
    bad[1, 3, 5] = float("nan")
    refused(ValueError, r"images\[1\] contains NaN", dinov2.forward_packed, [good, bad, good],
             attention=attention)
    batch = P.pack_images([good, bad, good], 14, max_len=8, cls_token=True)
    refused(ValueError, "image 1 of the packed batch contains NaN", dinov2.forward_packed, batch,
             attention=attention)


def test_load_dinov2_names_a_bad_device():
    refused(ValueError, "device", vit.load_dinov2, device="gpu")


# ----------------------------------------------------------------------------------------------------------
# training: losses, targets, heads, hyper-parameters


def test_losses_and_targets_are_checked():
    refused(TypeError, "losses must be a", training.reduce_losses, [1.0, 2.0], [3, 4])
    refused(TypeError, "floating point", training.reduce_losses, torch.tensor([1, 2]), [3, 4])
    head = training.make_head(3)
    refused(TypeError, "integer class indices", training.check_targets, torch.tensor([0.0, 1.0]), 2, 3)
    refused(ValueError, r"in \[0, 3\)", training.check_targets, torch.tensor([0, 3]), 2, 3)
    refused(ValueError, r"\(2,\) class indices", training.check_targets, torch.tensor([0]), 2, 3)
    assert head.out_features == 3


BAD_HEADS = [(dict(num_classes=-1), "num_classes"), (dict(num_classes=0), "num_classes"),
             (dict(num_classes=2, dim=0), "dim"), (dict(num_classes=2, seed=-1), "seed")]


@pytest.mark.parametrize("kw, words", BAD_HEADS)
def test_make_head_refuses_impossible_heads(kw, words):
    refused((ValueError, TypeError), words, training.make_head, **kw)


def test_finetune_and_crop_task_refuse_bad_settings(dinov2):
    data = finetune.crop_task(1, 2, budget=(16, 16))
    refused(ValueError, "lr", finetune.finetune, dinov2, data, lr=-1, progress=False)
    refused(ValueError, "backbone_lr", finetune.finetune, dinov2, data, backbone_lr=-1, progress=False)
    refused(ValueError, "train_blocks", finetune.finetune, dinov2, data, train_blocks=100, progress=False)
    refused(ValueError, "non-empty list", finetune.finetune, dinov2, [], progress=False)
    refused(TypeError, r"\(min, max\) pair", finetune.crop_task, 1, 2, budget=64)


def test_time_drop_rates_refuses_bad_rates_and_a_string_of_backends(dinov2):
    head = training.make_head(2)
    images, targets = [torch.zeros(3, 28, 28)], torch.tensor([0])
    for rates in ((-0.5,), (float("nan"),), (1.0,)):
        refused(ValueError, "rates", finetune.time_drop_rates, dinov2, head, images, targets, rates=rates)
    refused(TypeError, "write \\['dense_mask'\\]", finetune.time_drop_rates, dinov2, head, images, targets,
             backends="dense_mask")
    for kw, words in ((dict(rows=0), "rows"), (dict(max_len=0), "max_len"), (dict(repeats=0), "repeats"),
                      (dict(train_blocks=13), "train_blocks"), (dict(backends=[]), "backends is empty")):
        refused(ValueError, words, finetune.time_drop_rates, dinov2, head, images, targets, **kw)
    refused(ValueError, "targets must be", finetune.time_drop_rates, dinov2, head, images,
             torch.tensor([0, 1]))
    # one 2x2-patch image cannot fill two rows: a fixed budget of rows needs more images
    refused(ValueError, "images: all 1 images fill only 1 of 2 rows", finetune.time_drop_rates, dinov2, head,
             images, targets, max_len=8, progress=False)
    refused(ValueError, "more than max_len=4", finetune.time_drop_rates, dinov2, head, images, targets,
             max_len=4, rows=1, progress=False)


# ----------------------------------------------------------------------------------------------------------
# sizes and packing


def test_sizes_that_cannot_finish_arerefused():
    refused(ValueError, "allow_upscale", P.navit_size, (20, 20), max_tokens=10**9, allow_upscale=True)
    refused(ValueError, "min_pixels", P.qwen2_vl_size, (800, 600), min_pixels=10**6, max_pixels=10**5)
    refused(ValueError, "int32", P.cu_seqlens, [2**30, 2**30])
    refused(ValueError, "batch_size", P.bucketing_report, [(100, 100), (200, 100)], 0)


# ----------------------------------------------------------------------------------------------------------
# weights: altered files and unwritable places


def test_a_file_with_altered_metadata_or_swapped_blocks_isrefused(tmp_path):
    from safetensors.torch import save_file

    sd, meta = W.verify_file(W.cache_path())
    bad = tmp_path / "layout.safetensors"
    save_file(sd, str(bad), metadata={**meta, "layout": "hg"})
    refused(W.WeightsError, "layout", W.verify_file, bad)
    swapped = dict(sd)
    for part in ("weight", "bias"):  # blocks 0 and 1 swapped, and the record's hash recomputed to match
        a, b = f"encoder.layer.0.mlp.fc1.{part}", f"encoder.layer.1.mlp.fc1.{part}"
        swapped[a], swapped[b] = sd[b], sd[a]
    bad = tmp_path / "swapped.safetensors"
    save_file(swapped, str(bad), metadata={**meta, "payload_sha256": W._payload_sha256(swapped)})
    refused(W.WeightsError, "not the DINOv2", W.verify_file, bad)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_cache_or_export_folder_says_what_to_set(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    refused(W.WeightsError, "ANYRES_CACHE", W.convert, cache_dir=ro, force=True)
    refused(W.WeightsError, "writable folder", W.export, ro, "bfloat16")


def test_an_impossible_cache_or_export_location_says_what_to_set(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    refused(W.WeightsError, "ANYRES_CACHE", W.convert, cache_dir=blocker / "cache", force=True)
    refused(W.WeightsError, "writable folder", W.export, blocker / "out", "bfloat16")


# ----------------------------------------------------------------------------------------------------------
# the benchmark's output


def test_bench_refuses_an_unwritable_out_and_a_main_set_beyond_memory(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    refused(SystemExit, "cannot write", bench.run, ["--quick", "--out", str(blocker / "r.json")])
    many = ["--quick", "--num-images", "100000", "--out", str(tmp_path / "r.json")]
    refused(SystemExit, "GiB", bench.run, many)


def test_a_broken_result_file_is_named_not_skipped_silently(tmp_path):
    (tmp_path / "cut.json").write_text('{"meta": {"device_name": "x"}, "resu')  # a full disk's half file
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    problems = []
    assert bench.recorded_results(tmp_path, problems) == []
    assert [p.split(":")[0] for p in problems] == ["cut.json", "other.json"]
    assert "invalid JSON" in problems[0]
