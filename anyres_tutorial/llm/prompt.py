"""The whole LLM input of a prompt with images, as a list of segments. Taught in
`what_the_language_model_receives`.

    from anyres_tutorial.llm import prompt
    p = prompt.layout("llava_next", [(800, 600), (1000, 400)],
                      "USER: <image> <image> What differs between the two pictures? ASSISTANT:")
    p.num_tokens, p.image_tokens(0), p.counts()  # 4388, 2340, {'text': 8, 'image': 4320, 'newline': 60}

Every ``<image>`` placeholder of ``text`` expands into the image's segments (see ``specs.Segment``):
``kind == "text"`` for words, ``"marker"`` for wrapper tokens the plan does not count (InternVL's
``<img>`` / ``</img>``, Qwen2-VL's ``<|vision_start|>`` / ``<|vision_end|>``); every other kind ("image",
"newline", "separator", "extra", "break", "end") belongs to the image, and one image's counts add up to
``tiling.plan(...).num_tokens`` (or the packing rule's count for ``qwen2_vl`` / ``pixtral``).

Text tokenizer: a documented **toy whitespace tokenizer** - one token per whitespace-separated word (no real
tokenizer ships offline with this tutorial). Real tokenizers split words into sub-word pieces and add BOS /
chat-template tokens, so real text counts are larger; the image counts are exact.
"""

from __future__ import annotations

import numbers
import re
from collections import Counter
from dataclasses import dataclass

from ..checks import check_int, check_size
from . import specs as M
from .specs import Segment

#: The placeholder a prompt uses for each image, in order.
IMAGE_PLACEHOLDER = "<image>"
#: Segment kinds that do not belong to an image's counted tokens.
UNCOUNTED = ("text", "marker")


def tokenize(text: str) -> list[str]:
    """The toy whitespace tokenizer: one token per whitespace-separated word."""
    return text.split()


@dataclass(frozen=True)
class Prompt:
    """A laid-out LLM input: ``method``, ``image_sizes`` (Size per image), ``text`` (with placeholders),
    ``segments`` (list of :class:`~.specs.Segment`, in sequence order)."""

    method: str
    image_sizes: tuple
    text: str
    segments: tuple

    @property
    def num_tokens(self) -> int:
        """Length of the LLM input."""
        return sum(s.count for s in self.segments)

    def _image(self, i) -> int:
        if not self.image_sizes:
            raise ValueError("this prompt has no images")
        return check_int("image", i, 0, len(self.image_sizes) - 1)

    def image_tokens(self, i: int) -> int:
        """Counted tokens of image ``i`` (every kind except text and markers)."""
        i = self._image(i)
        return sum(s.count for s in self.segments if s.image == i and s.kind not in UNCOUNTED)

    def counts(self, image: int | None = None) -> dict:
        """Tokens per kind (of one image, or of the whole prompt)."""
        image = None if image is None else self._image(image)
        c: Counter = Counter()
        for s in self.segments:
            if image is None or s.image == image:
                c[s.kind] += s.count
        return dict(c)

    def kinds(self) -> list[str]:
        """The kind of every token, in order (length ``num_tokens``)."""
        return [s.kind for s in self.segments for _ in range(s.count)]

    def table(self, limit: int | None = 24) -> str:
        """One line per segment; with more than ``limit`` (None: no limit, else >= 2) segments the middle ones
        are elided."""
        if limit is not None:
            limit = check_int("limit", limit, 2)
        lines = [f"{'#':>3s} {'kind':9s} {'count':>6s}  image  view/token"]
        keep = range(len(self.segments))
        if limit is not None and len(self.segments) > limit:
            keep = [*range(limit // 2), *range(len(self.segments) - limit // 2, len(self.segments))]
        for j, i in enumerate(keep):
            if j and i != keep[j - 1] + 1:
                lines.append(f"... {i - keep[j - 1] - 1} more segments ...")
            s = self.segments[i]
            img = "" if s.image is None else str(s.image)
            lines.append(f"{i:3d} {s.kind:9s} {s.count:6d}  {img:>5s}  {s.view or s.token}")
        return "\n".join(lines)


def _check_layout_args(text, image_sizes) -> tuple[tuple, list[str]]:
    """:func:`layout`'s checks of ``text`` and ``image_sizes`` -> (sizes as ``Size``, ``text`` split into
    pieces with every ``<image>`` placeholder a piece of its own, one placeholder per size)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string with one {IMAGE_PLACEHOLDER} per image, "
                        f"got {type(text).__name__}")
    if isinstance(image_sizes, (str, bytes)) or not hasattr(image_sizes, "__len__") or (
            len(image_sizes) == 2 and all(isinstance(v, numbers.Integral) for v in image_sizes)):
        raise TypeError(f"image_sizes must be a sequence of (width, height) pairs, one per "
                        f"{IMAGE_PLACEHOLDER} (for one image: [(800, 600)]), got {image_sizes!r}")
    sizes = tuple(check_size(s, f"image_sizes[{i}]", max_aspect=None) for i, s in enumerate(image_sizes))
    pieces = re.split(f"({re.escape(IMAGE_PLACEHOLDER)})", text)
    n_ph = pieces.count(IMAGE_PLACEHOLDER)
    if n_ph != len(sizes):
        raise ValueError(f"the text has {n_ph} {IMAGE_PLACEHOLDER} placeholder(s) but {len(sizes)} image "
                         f"size(s) were given")
    return sizes, pieces


def layout(method: str, image_sizes, text: str, **options) -> Prompt:
    """The LLM input of ``text`` (with one ``<image>`` per image) for ``method``, images of ``image_sizes``
    ((width, height) each). ``options`` go to ``tiling.plan`` (or to the packing rule); options that depend
    on the number of images (DeepSeek-VL2's ``images_in_prompt``) are set from the prompt. ValueError when
    the placeholders and the images do not match in number, or when an option the prompt sets is passed."""
    spec = M.get(method)
    sizes, pieces = _check_layout_args(text, image_sizes)  # pieces: text split around the placeholders
    segments: list[Segment] = []
    k = 0
    for piece in pieces:
        if piece == IMAGE_PLACEHOLDER:
            segments += [Segment("marker", 1, m, k) for m in spec.before]
            segments += spec.image_segments(method, sizes[k], options, k, len(sizes))
            segments += [Segment("marker", 1, m, k) for m in spec.after]
            k += 1
        elif tokenize(piece):
            segments.append(Segment("text", len(tokenize(piece)), " ".join(tokenize(piece))))
    out = Prompt(method, sizes, text, tuple(segments))
    for i, size in enumerate(sizes):  # the contract: one image's counted tokens = the plan's LLM tokens
        want = spec.expected_tokens(method, size, options, len(sizes))
        got = out.image_tokens(i)
        assert got == want, f"{method}: image {i} has {got} tokens, not {want}"
    return out


def conversation(n_images: int = 2, question: str = "What differs between these pictures?") -> str:
    """A one-turn chat prompt with ``n_images`` (>= 0) placeholders (a generic "USER: ... ASSISTANT:"
    template)."""
    n_images = check_int("n_images", n_images, 0, 10_000)
    if not isinstance(question, str):
        raise TypeError(f"question must be a string, got {type(question).__name__}")
    if IMAGE_PLACEHOLDER in question:
        raise ValueError(f"question must not contain {IMAGE_PLACEHOLDER}; pass the image count as n_images")
    return " ".join(["USER:"] + [IMAGE_PLACEHOLDER] * n_images + [question, "ASSISTANT:"])


__all__ = ["IMAGE_PLACEHOLDER", "UNCOUNTED", "tokenize", "Prompt", "layout", "conversation"]
