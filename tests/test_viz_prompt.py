"""Pictures of what the language model receives (``viz.prompt``)."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from anyres_tutorial import llm, viz


def test_prompt_pictures_draw_every_method():
    sizes = [(1000, 400), (640, 480)]
    prompts = [llm.layout(m, sizes, llm.conversation(2)) for m in llm.methods()]
    assert isinstance(viz.prompt_strips(prompts), Figure)
    traces = {m: llm.run_connector(m, (1000, 400), vision_dim=8, llm_dim=8)[1] for m in llm.methods()}
    assert isinstance(viz.connector_flow(traces), Figure)
    q = llm.layout("qwen2_vl", [(112, 84), (56, 112)], "a <image> b <image> c")
    assert isinstance(viz.llm_positions(prompts[1], q), Figure)
    assert isinstance(viz.mrope_grid(q, 1), Figure)
    with pytest.raises(ValueError):
        viz.mrope_grid(prompts[1])
    with pytest.raises(ValueError):
        viz.prompt_strips([])


def test_prompt_pictures_read_at_10_pt_where_the_notebook_shows_them():
    """`what_the_language_model_receives` shows these at their own size: no text under 10 pt, nothing
    overlapping, nothing wider than the notebook's column."""
    from anyres_tutorial import data
    from anyres_tutorial.viz import shown

    sizes = [(1000, 400), (640, 480)]
    prompts = [llm.layout(m, sizes, llm.conversation(2)) for m in llm.methods()]
    traces = {m: llm.run_connector(m, (1000, 400), vision_dim=8, llm_dim=8)[1] for m in llm.methods()}
    cat = data.load_data_image("chelsea")
    q = llm.layout("qwen2_vl", [cat.size], "a <image> b")
    q2 = llm.layout("qwen2_vl", [(112, 84), (56, 112)], "a <image> b <image> c")
    for fig in (viz.prompt_strips(prompts), viz.prompt_strips(prompts[1:2]), viz.connector_flow(traces),
                viz.llm_positions(prompts[1], q2), viz.mrope_grid(q, 0, picture=cat), viz.mrope_grid(q2, 1)):
        rep = shown.check_figure(fig, min_pt=10)
        assert rep["scale"] == 1, (shown.figure_title(fig), rep["width_px"])


def test_prompt_strip_colours_mean_one_thing():
    """Upper lane: colour = image (never a tile colour); lower lane: the view, in colours no image has."""
    from matplotlib.colors import to_hex

    p = llm.layout("internvl", [(1000, 400), (640, 480)], llm.conversation(2))
    fig = viz.prompt_strips([p])
    ax = fig.axes[0]
    upper = {to_hex(b.get_facecolor()) for b in ax.patches if b.get_height() > 0.3}
    lower = {to_hex(b.get_facecolor()) for b in ax.patches if b.get_height() < 0.3}
    images = {to_hex(viz.image_color(k)) for k in range(2)}
    assert images <= upper and not (lower & images)
    assert lower == {to_hex(c) for c in (*viz.prompt.TILE_SHADES, viz.palette.GLOBAL_COLOR)}
