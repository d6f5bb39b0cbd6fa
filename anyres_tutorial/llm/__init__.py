"""What the language model receives: connectors, special tokens, the whole prompt and its positions.

Taught in `what_the_language_model_receives`.

- :mod:`.connectors` one small ``nn.Module`` per method (random initialisation, reference shapes)
- :mod:`.specs`      the registry of LLM-side descriptions (connector, special tokens, wrapper markers)
- :mod:`.prompt`     ``layout(method, image_sizes, text)`` -> the LLM input as segments
- :mod:`.positions`  1-D positions vs Qwen2-VL's M-RoPE (t, h, w) ids

    from anyres_tutorial import llm
    emb, trace = llm.run_connector("llava_next", (800, 600))   # emb: (2340, D)
    p = llm.layout("qwen2_vl", [(640, 480), (300, 900)], llm.conversation(2))
    llm.mrope(p)                                                # (3, p.num_tokens)
"""

from __future__ import annotations

from . import connectors
from .positions import mrope, positions_1d
from .prompt import IMAGE_PLACEHOLDER, Prompt, conversation, layout, tokenize
from .specs import (
    GENERIC,
    PackingSpec,
    Segment,
    TilingSpec,
    connector,
    expected_tokens,
    get,
    methods,
    register,
    run_connector,
    unregister,
)

__all__ = ["connectors", "GENERIC", "PackingSpec", "Segment", "TilingSpec", "connector", "expected_tokens",
           "get", "methods", "register", "run_connector", "unregister", "mrope", "positions_1d",
           "IMAGE_PLACEHOLDER", "Prompt", "conversation", "layout", "tokenize"]
