"""Procedural drawing of the synthetic images in ``data/`` (PIL only; numpy for gradients and seeded noise).

Every picture is drawn with PIL's built-in font ``ImageFont.load_default(size=...)``, never a system font, so
the same pixels come out on every machine with the same Pillow / FreeType (``data.RENDERED_WITH``). The
registry of the images, their metadata and the ``python -m anyres_tutorial.data`` generator live in
:mod:`anyres_tutorial.data`; this module only draws. Taught in `setup_and_why_resolution`.

``common`` holds the font and text helpers, ``documents`` the text page and the chart, ``scenes`` the
panorama, the phone screenshot, the icon and the strip. Sizes are (width, height) everywhere.
"""

from __future__ import annotations

from .common import font
from .documents import draw_chart, draw_text_page
from .scenes import draw_icon, draw_panorama, draw_phone_screenshot, draw_strip

DRAW = {
    "text_page": draw_text_page,
    "panorama": draw_panorama,
    "phone_screenshot": draw_phone_screenshot,
    "chart": draw_chart,
    "icon": draw_icon,
    "strip": draw_strip,
}

__all__ = ["DRAW", "font", "draw_text_page", "draw_panorama", "draw_phone_screenshot", "draw_chart",
           "draw_icon", "draw_strip"]
