"""Bad input to ``llm`` and to the tiling methods' options: a clear error naming the argument and the allowed
values, raised before any long work (every case here must answer within seconds)."""

from __future__ import annotations

import pytest
import torch
from conftest import refused

from anyres_tutorial import llm, tiling

DIMS = {"vision_dim": 8, "llm_dim": 16}


def _refused(exc, match, fn, *args, **kwargs):
    """``conftest.refused`` within 5 s."""
    refused(exc, match, fn, *args, within=5, **kwargs)


# -------------------------------------------------------------------------------- sizes that cannot finish


def test_template_grids_and_token_counts_beyond_the_limits_are_refused_before_planning():
    _refused(ValueError, r"templates: 65536:65536 has 4,294,967,296 tiles, more than the supported 4096",
             tiling.plan, "template", (1000, 800), templates=[(65536, 65536)])
    _refused(ValueError, r"tile_size=4096, patch_size=1 .* more than the supported 4,194,304",
             tiling.plan, "template", (4000, 4000), tile_size=4096, patch_size=1, templates=[(8, 8)])
    _refused(ValueError, r"patch_size", llm.layout, "template", [(4000, 4000)], "<image>", tile_size=4096,
             patch_size=1)
    # the largest accepted template still lays out in time (about 3 M tokens)
    p = llm.layout("template", [(3000, 3000)], "<image>", templates=[(64, 64)])
    assert p.image_tokens(0) == tiling.plan("template", (3000, 3000), templates=[(64, 64)]).num_tokens


@pytest.mark.parametrize("method,tile", [("llava_next", 336), ("deepseek_vl2", 384)])
def test_candidate_canvases_beyond_the_tile_limit_are_refused(method, tile):
    n = 65536 // tile  # the largest side a size may have, in tiles
    side = tile * n
    _refused(ValueError, rf"candidates: the canvas {side}x{side} holds {n * n:,} tiles of {tile} px",
             tiling.plan, method, (6000, 6000), candidates=[(side, side)])
    assert tiling.plan(method, (6000, 6000), candidates=[(tile * 64, tile * 64)]).grid == (64, 64)


def test_connector_runs_that_cannot_fit_are_refused_before_allocating():
    _refused(ValueError, r"qwen2_vl: one image would take 5,480,281 LLM tokens, more than the supported",
             llm.run_connector, "qwen2_vl", (65536, 65536), max_pixels=10 ** 10)
    _refused(ValueError, r"template: the connector would run on .* numbers, more than the supported",
             llm.run_connector, "template", (3000, 3000), templates=[(64, 64)])
    _refused(ValueError, r"weights, more than the supported 268,435,456; choose smaller widths",
             llm.run_connector, "qwen2_vl", (64, 64), vision_dim=16384)
    _refused(ValueError, r"vision_dim must be <= 16384", llm.run_connector, "pixtral", (64, 64),
             vision_dim=10 ** 9)


# -------------------------------------------------------------------------------- wrong types and values


def test_method_names_must_be_strings():
    _refused(TypeError, r"method must be a string, one of \('template', .*got \['llava_next'\]",
             llm.layout, ["llava_next"], [(800, 600)], "<image>")
    _refused(TypeError, "method must be a string", llm.get, 5)
    _refused(ValueError, "unknown method 'nope'", llm.get, "nope")
    _refused(ValueError, "identifier-like string, got 5", llm.register, 5, llm.GENERIC)
    _refused(ValueError, "unknown LLM-side description 'nope'; choose one of", llm.unregister, "nope")
    _refused(TypeError, "replace must be True or False, got 'yes'", llm.register, "x", llm.GENERIC,
             replace="yes")


def test_positions_need_a_laid_out_prompt():
    _refused(TypeError, r"p must be a Prompt from llm.layout\(method, image_sizes, text\), got str",
             llm.mrope, "str")
    _refused(TypeError, "p must be a Prompt", llm.positions_1d, None)


def test_widths_and_seeds_are_checked():
    _refused(ValueError, "vision_dim must be >= 1, got -1", llm.run_connector, "llava_next", (800, 600),
             vision_dim=-1)
    _refused(ValueError, "llm_dim must be >= 1, got 0", llm.connector, "llava_next", (800, 600), llm_dim=0)
    _refused(TypeError, r"vision_dim must be an integer, got 1.5", llm.run_connector, "internvl", (800, 600),
             vision_dim=1.5)
    _refused(TypeError, "vision_dim must be an integer, got True", llm.run_connector, "internvl", (800, 600),
             vision_dim=True)
    _refused(ValueError, r"UReaderAbstractor: vision_dim must be a multiple of 4", llm.run_connector,
             "ureader", (800, 600), vision_dim=6)
    _refused(ValueError, r"LlavaMiniConnector: llm_dim must be a multiple of 4", llm.run_connector,
             "llava_mini", (800, 600), llm_dim=6)
    _refused(TypeError, "seed must be an integer, got 'a'", llm.run_connector, "llava_next", (800, 600),
             seed="a")
    _refused(ValueError, "seed must be >= 0", llm.connector, "pixtral", seed=-1)


def test_connector_image_size_none_is_the_default_and_zero_is_refused():
    _refused(TypeError, r"image_size must be a pair of integers like \(width, height\), got 0",
             llm.connector, "llava_next", image_size=0)
    _refused(ValueError, r"image_size\[0\] must be >= 1, got 0", llm.connector, "llava_next", (0, 600))
    m = llm.connector("llava_mini", compressor_size=3, **DIMS)
    assert m.queries.shape[0] == 9  # built from the 800x600 plan
    _refused(TypeError, r"unknown option\(s\) \['foo'\] for method 'pixtral'; valid options: "
                        r"\['longest_edge'\]", llm.connector, "pixtral", (800, 600), foo=3)


def test_options_the_prompt_sets_are_refused_in_layout():
    _refused(ValueError, r"images_in_prompt is set from the prompt's <image> count \(1 here\)",
             llm.layout, "deepseek_vl2", [(800, 600)], "<image>", images_in_prompt=5)
    # a lone image may still ask for the per-image count of a three-image prompt
    three = llm.layout("deepseek_vl2", [(800, 600)] * 3, "<image> <image> <image>")
    assert llm.expected_tokens("deepseek_vl2", (800, 600), images_in_prompt=3) == three.image_tokens(0)


def test_packing_options_are_checked():
    _refused(ValueError, r"min_pixels \(10,000,000\) must be <= max_pixels \(1,000\)",
             llm.layout, "qwen2_vl", [(800, 600)], "<image>", min_pixels=10 ** 7, max_pixels=1000)
    _refused(ValueError, r"min_pixels \(3,136\) must be <= max_pixels \(1,000\)",
             llm.expected_tokens, "qwen2_vl", (800, 600), max_pixels=1000)
    _refused(TypeError, r"unknown option\(s\) \['factor'\] for method 'qwen2_vl'; valid options: "
                        r"\['min_pixels', 'max_pixels', 'setting'\]", llm.run_connector, "qwen2_vl",
             (800, 600), factor=30)
    _refused(TypeError, r"\['patch_size'\] for method 'pixtral'", llm.layout, "pixtral", [(80, 60)],
             "<image>", patch_size=14)
    _refused(ValueError, r"setting must be one of \('transformers_default', 'released'\)", llm.layout,
             "qwen2_vl", [(80, 60)], "<image>", setting="default")


def test_prompt_arguments_are_checked():
    _refused(ValueError, "n_images must be >= 0, got -1", llm.conversation, -1)
    _refused(TypeError, "n_images must be an integer, got '2'", llm.conversation, "2")
    _refused(TypeError, "question must be a string, got int", llm.conversation, 2, 3)
    _refused(ValueError, "question must not contain <image>", llm.conversation, 1, "<image>?")
    assert llm.conversation(0).split() == ["USER:", "What", "differs", "between", "these", "pictures?",
                                           "ASSISTANT:"]
    _refused(TypeError, "text must be a string with one <image> per image, got int", llm.layout, "llava_next",
             [(800, 600)], 5)
    _refused(TypeError, r"image_sizes must be a sequence of \(width, height\) pairs, one per <image> "
                        r"\(for one image: \[\(800, 600\)\]\), got \(800, 600\)", llm.layout, "llava_next",
             (800, 600), "<image>")
    _refused(TypeError, "image_sizes must be a sequence", llm.layout, "llava_next", "800x600", "<image>")
    _refused(ValueError, r"image_sizes\[1\]\[0\] must be >= 1", llm.layout, "llava_next", [(8, 8), (0, 8)],
             "<image> <image>")


def test_prompt_accessors_check_their_arguments():
    p = llm.layout("llava_next", [(800, 600)], "<image> hi")
    _refused(ValueError, "image must be <= 0, got 5", p.image_tokens, 5)
    _refused(ValueError, "image must be >= 0, got -1", p.counts, -1)
    _refused(ValueError, "limit must be >= 2, got -1", p.table, limit=-1)
    _refused(TypeError, "limit must be an integer, got 'a'", p.table, limit="a")
    _refused(ValueError, "this prompt has no images", llm.layout("llava_next", [], "hi").image_tokens, 0)
    assert p.counts(0) == {"image": 576 + 36 * 48, "newline": 36} and len(p.table(limit=2).splitlines()) == 4


def test_the_run_length_encoding_of_a_layout_is_unchanged():
    # the token-code walk is vectorised now: the segments of every method agree with a Python walk
    from anyres_tutorial.llm.specs import _runs
    from anyres_tutorial.tiling.protocol import EMPTY

    for method in tiling.METHODS:
        p = tiling.plan(method, (1000, 400))
        codes = [int(c) for b in tiling.token_layout(p) for c in b.codes.ravel() if c != EMPTY]
        walk: list = []
        for c in codes:
            if walk and walk[-1][0] == c:
                walk[-1][1] += 1
            else:
                walk.append([c, 1])
        assert _runs(torch.tensor(codes).numpy()) == [tuple(r) for r in walk], method
