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
