"""The synthetic scenes: a wide panorama, a tall phone screenshot, a tiny icon and a 1:100 ruler strip.

Part of :mod:`anyres_tutorial.synthetic`; taught in `setup_and_why_resolution`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .common import (
    draw_text,
    smooth_noise,
    text_width,
    vertical_gradient,
    wrap_words,
)


def _skyline(d, rng, horizon) -> None:
    """Buildings with grids of tiny windows and a few antennas."""
    x = 40
    while x < 1900:
        bw = int(rng.integers(30, 90))
        bh = int(rng.integers(60, 260 if 600 < x < 1300 else 160))
        top = horizon - bh
        shade = int(rng.integers(28, 52))
        d.rectangle([x, top, x + bw, horizon], fill=(shade, shade, shade + 18))
        for wy in range(top + 6, horizon - 6, 7):
            for wx in range(x + 4, x + bw - 4, 6):
                if rng.random() < 0.42:
                    d.rectangle(
                        [wx, wy, wx + 2, wy + 3],
                        fill=(255, 220, 140) if rng.random() < 0.8 else (180, 220, 255),
                    )
        if rng.random() < 0.3:
            ax = x + bw // 2
            d.line([(ax, top), (ax, top - int(rng.integers(15, 60)))], fill=(30, 30, 40), width=1)
            d.point((ax, top - 1), fill=(255, 60, 60))
        x += bw + int(rng.integers(2, 14))


def _crane(d, horizon) -> None:
    """A lattice crane over the skyline."""
    cx, ctop = 1480, 150
    d.line([(cx, horizon), (cx, ctop - 30)], fill=(240, 170, 40), width=3)
    d.line([(cx - 80, ctop + 10), (cx + 260, ctop + 10)], fill=(240, 170, 40), width=2)
    d.line([(cx - 80, ctop + 18), (cx + 260, ctop + 18)], fill=(240, 170, 40), width=1)
    for k in range(-80, 260, 10):
        d.line([(cx + k, ctop + 10), (cx + k + 5, ctop + 18)], fill=(240, 170, 40), width=1)
    d.line([(cx, ctop - 30), (cx + 260, ctop + 10)], fill=(60, 60, 60), width=1)
    d.line([(cx + 200, ctop + 18), (cx + 200, ctop + 120)], fill=(60, 60, 60), width=1)


def _hotel(d, rng, horizon) -> None:
    """A hotel with lit windows and a sign in tiny text."""
    d.rectangle([905, horizon - 300, 1005, horizon], fill=(46, 46, 66))
    for wy in range(horizon - 270, horizon - 8, 9):
        for wx in range(911, 998, 7):
            if rng.random() < 0.5:
                d.rectangle([wx, wy, wx + 3, wy + 4], fill=(255, 236, 190))
    d.rectangle([912, horizon - 296, 998, horizon - 282], fill=(20, 20, 30))
    draw_text(d, (955, horizon - 295), "HOTEL MARINA", 10, (255, 90, 120), anchor="ma")


def _bridge(d, W, horizon) -> None:
    """A suspension bridge: two towers, catenary main cables and 1-pixel hangers every 8 pixels."""
    deck_y, t1, t2 = horizon - 40, 2000, 2700
    d.rectangle([1900, deck_y, W, deck_y + 6], fill=(50, 50, 64))
    for tx in (t1, t2):
        d.rectangle([tx - 6, deck_y - 170, tx + 6, horizon + 30], fill=(150, 60, 50))
        d.line([(tx - 6, deck_y - 120), (tx + 6, deck_y - 120)], fill=(90, 40, 40), width=2)

    def cable(x0, x1, sag):
        pts = []
        for xx in range(x0, x1 + 1, 4):
            u = (xx - x0) / (x1 - x0)
            pts.append((xx, deck_y - 170 + sag * 4 * u * (1 - u)))
        return pts

    main = cable(t1, t2, 150)
    d.line(main, fill=(200, 90, 70), width=2)
    d.line([(1900, deck_y - 20), (t1, deck_y - 170)], fill=(200, 90, 70), width=2)  # side spans
    d.line([(t2, deck_y - 170), (W - 1, deck_y - 30)], fill=(200, 90, 70), width=2)
    for xx, yy in main[::2]:
        if yy < deck_y - 3:
            d.line([(xx, yy + 1), (xx, deck_y)], fill=(170, 90, 80), width=1)


def _reflections(im, rng, W, H, horizon):
    """Broken horizontal streaks on the water under lit areas; returns the new image."""
    arr = np.asarray(im).copy()
    for y in range(horizon + 4, H, 3):
        src = arr[2 * horizon - y - 1] if 2 * horizon - y - 1 > 0 else arr[0]
        mask = (src.astype(int).sum(axis=1) > 500) & (rng.random(W) < 0.35)
        arr[y, mask] = (arr[y, mask].astype(int) * 0.4 + src[mask].astype(int) * 0.6).astype(np.uint8)
    return Image.fromarray(arr)


def draw_panorama() -> Image.Image:
    """3000x600 harbour at dusk: mountains, a skyline with tiny windows, a suspension bridge, a label."""
    rng = np.random.default_rng(3000600)
    W, H, horizon = 3000, 600, 470
    sky = vertical_gradient(
        W, horizon, [(0, (22, 36, 82)), (0.55, (92, 88, 150)), (0.85, (236, 150, 110)), (1, (250, 196, 130))]
    )
    water = vertical_gradient(W, H - horizon, [(0, (70, 70, 110)), (1, (16, 22, 48))])
    im = Image.fromarray(np.concatenate([sky, water], axis=0))
    d = ImageDraw.Draw(im)
    d.ellipse([2330, 150, 2410, 230], fill=(255, 214, 150))  # low sun, half behind the mountains
    for _ in range(60):  # a few stars high up
        x, y = int(rng.integers(0, W)), int(rng.integers(0, 120))
        d.point((x, y), fill=(230, 230, 255))
    # two mountain ranges, far (hazy) and near
    xs = np.arange(W)
    for base, amp, scale, col in [(330, 150, 260, (120, 110, 160)), (380, 110, 140, (80, 76, 120))]:
        ridge = base - amp * (0.6 * smooth_noise(rng, W, scale) + 0.4 * smooth_noise(rng, W, scale // 4))
        d.polygon(
            [(0, horizon)] + [(int(x), int(r)) for x, r in zip(xs[::4], ridge[::4])] + [(W - 1, horizon)],
            fill=col,
        )
    _skyline(d, rng, horizon)
    _crane(d, horizon)
    _hotel(d, rng, horizon)
    _bridge(d, W, horizon)
    im = _reflections(im, rng, W, H, horizon)
    d = ImageDraw.Draw(im)
    for _ in range(14):  # gulls: tiny 1-pixel "v"s
        bx, by = 2300 + int(rng.integers(0, 500)), 120 + int(rng.integers(0, 120))
        d.line([(bx - 3, by - 2), (bx, by), (bx + 3, by - 2)], fill=(40, 40, 60), width=1)
    # a small boat with a name on its hull
    d.polygon([(560, 520), (680, 520), (665, 540), (575, 540)], fill=(230, 230, 235))
    d.line([(610, 520), (610, 470)], fill=(220, 220, 220), width=1)
    d.polygon([(612, 472), (612, 516), (650, 516)], fill=(240, 240, 245))
    draw_text(d, (620, 527), "ASTRID", 9, (30, 40, 90), anchor="ma")
    # the label, bottom right
    label = "Harbour at dusk  |  synthetic panorama 3000 x 600  |  anyres_tutorial"
    lw = math.ceil(text_width(label, 12))
    d.rectangle([W - lw - 30, H - 32, W - 10, H - 10], fill=(10, 14, 30))
    draw_text(d, (W - lw - 20, H - 28), label, 12, (235, 235, 235))
    return im


# ======================================================================================== phone screenshot

_CHAT = [
    ("day", "Tuesday 14 May"),
    ("in", "Hey! Are you still coming to the any-resolution workshop tomorrow?"),
    ("out", "Yes, just booked the train. It leaves at 14:07 from platform 3B."),
    ("in", "Great. Room is B-214, second floor, left after the coffee machine."),
    ("out", "Do I need a badge?"),
    ("in", "Registration code is XK-4471-QZ. Show it at the desk, they print the badge."),
    ("out", "Perfect, thanks. Slides: tiling vs packing, 25 min + 5 min questions."),
    ("link", "Programme, rooms and timings (PDF, 2.4 MB)|anyres-workshop.example.org/schedule"),
    ("in", "Can you bring the receipt for the hotel? Finance wants it by Friday."),
    (
        "receipt",
        "Hotel Marina, Harbour St. 3|2 nights x 89.00;178.00|City tax 2 x 2.50;5.00|Total EUR;183.00",
    ),
    ("out", "Here it is. Invoice no. 2024-05-0193."),
    ("day", "Wednesday 15 May"),
    ("in", "Morning! The Wi-Fi password is on the whiteboard: tiles&patches_336"),
    ("out", "Ha, of course it is."),
    ("in", "Projector takes HDMI or USB-C. Adapter is in drawer 4, the key is taped under it."),
    ("out", "My laptop says 3024 x 1964, will the slides fit?"),
    ("in", "It's 1920 x 1080. Same problem as your talk: resize, pad or tile :)"),
    ("out", "I'll pad. Never squash a chart."),
    ("in", "Dinner after? The place on Harbour St. 12 has a table for 6 at 19:30."),
    ("out", "Count me in. I'm vegetarian, can you tell them?"),
    ("in", "Done. Their menu: soup 6.50, risotto 14.00, tart 5.80."),
    ("day", "Today 09:12"),
    ("in", "Thanks for the talk! Can you share the notebook? Someone asked about the 20 x 2000 strip."),
    ("out", "Sure, it's in the repo. The strip needs a 1 x 8 grid, not 3 x 3."),
    ("in", "And the token counts? 2,880 vs 3,328 was the number on slide 17?"),
    ("out", "Yes. 2x2 + global for AnyRes, 12 tiles + thumbnail for the dynamic one."),
    ("in", "Got it. Train back is 17:52, coach 6, seat 45."),
    ("out", "See you at the station!"),
    ("in", "Safe travels! Send me the QR code."),
]


def _status_bar(d, W) -> None:
    draw_text(d, (28, 10), "9:41", 16, (0, 0, 0), bold=True)
    draw_text(d, (462, 12), "87%", 11, (0, 0, 0), anchor="ra")
    for i in range(4):  # signal bars
        h = 4 + 3 * i
        d.rectangle([470 + 6 * i, 24 - h, 473 + 6 * i, 24], fill=(0, 0, 0))
    for r in (4, 8, 12):  # wifi arcs
        d.arc([510 - r, 25 - r, 510 + r, 25 + r], 225, 315, fill=(0, 0, 0), width=2)
    d.rounded_rectangle([530, 11, 566, 25], radius=4, outline=(0, 0, 0), width=1)  # battery
    d.rectangle([532, 13, 561, 23], fill=(0, 0, 0))
    d.rectangle([567, 15, 569, 21], fill=(0, 0, 0))


def _phone_header(d, W) -> None:
    """The chat header: back arrow, avatar, name, "online", video and info icons."""
    d.rectangle([0, 36, W, 108], fill=(247, 247, 249))
    d.line([(0, 108), (W, 108)], fill=(210, 210, 215))
    d.line([(22, 72), (32, 62)], fill=(10, 132, 255), width=3)
    d.line([(22, 72), (32, 82)], fill=(10, 132, 255), width=3)
    d.ellipse([52, 48, 100, 96], fill=(160, 120, 220))
    draw_text(d, (76, 72), "MK", 16, (255, 255, 255), True, "mm")
    draw_text(d, (114, 52), "Maya Kowalski", 18, (0, 0, 0), bold=True)
    draw_text(d, (114, 78), "online", 12, (52, 168, 83))
    d.rounded_rectangle([470, 60, 500, 82], radius=4, outline=(10, 132, 255), width=2)  # video icon
    d.polygon([(502, 71), (512, 63), (512, 79)], fill=(10, 132, 255))
    d.ellipse([540, 58, 566, 84], outline=(10, 132, 255), width=2)  # info icon
    draw_text(d, (553, 71), "i", 15, (10, 132, 255), True, "mm")


_MAXW = 380  # widest chat bubble / card


def _link_card(im, d, W, y, text, bottom):
    """A link preview card with a thumbnail; the next y, or None when it does not fit above ``bottom``."""
    title, url = text.split("|")
    x0 = W - 16 - _MAXW
    if y + 150 > bottom:
        return None
    d.rounded_rectangle([x0, y, W - 16, y + 150], radius=14, fill=(233, 233, 235))
    thumb = vertical_gradient(_MAXW - 2, 80, [(0, (120, 170, 230)), (1, (30, 80, 160))])
    im.paste(Image.fromarray(thumb), (x0 + 1, y + 1))
    for gx in range(x0 + 20, W - 30, 24):  # a tiny grid drawn on the preview image
        d.line([(gx, y + 12), (gx, y + 70)], fill=(200, 220, 250), width=1)
    draw_text(d, (x0 + 12, y + 90), title, 13, (0, 0, 0), bold=True)
    draw_text(d, (x0 + 12, y + 112), url, 11, (100, 100, 105))
    return y + 150 + 18


def _receipt(im, d, W, y, text, bottom):
    """A photographed receipt (the smallest digits in the screenshot); the next y, or None."""
    head, *items = text.split("|")
    x0, bw, bh = 16, _MAXW, 48 + 18 * len(items)
    if y + bh > bottom:
        return None
    d.rounded_rectangle([x0, y, x0 + bw, y + bh], radius=14, fill=(233, 233, 235))
    d.rectangle(
        [x0 + 12, y + 12, x0 + bw - 12, y + bh - 12], fill=(255, 255, 255), outline=(190, 190, 190)
    )
    draw_text(d, (x0 + bw // 2, y + 16), head, 11, (40, 40, 40), bold=True, anchor="ma")
    for i, item in enumerate(items):
        left, right = item.split(";")
        iy = y + 34 + 18 * i
        last = i == len(items) - 1
        if last:
            d.line([(x0 + 20, iy - 2), (x0 + bw - 20, iy - 2)], fill=(120, 120, 120))
        draw_text(d, (x0 + 20, iy), left, 11, (40, 40, 40), bold=last)
        draw_text(d, (x0 + bw - 20, iy), right, 11, (40, 40, 40), bold=last, anchor="ra")
    return y + bh + 18


def _bubble(d, W, y, text, out: bool, stamp: str, bottom):
    """A chat bubble of wrapped small text with its time stamp; the next y, or None."""
    pad, size, lead = 12, 15, 20
    lines = wrap_words(text, size, _MAXW - 2 * pad)
    bw = max(text_width(" ".join(ln), size) for ln in lines) + 2 * pad
    bh = len(lines) * lead + 2 * pad - 4
    if y + bh + 20 > bottom:
        return None
    x0 = W - 16 - bw if out else 16
    d.rounded_rectangle(
        [x0, y, x0 + bw, y + bh], radius=16, fill=(10, 132, 255) if out else (233, 233, 235)
    )
    for i, ln in enumerate(lines):
        draw_text(
            d,
            (x0 + pad, y + pad - 2 + i * lead),
            " ".join(ln),
            size,
            (255, 255, 255) if out else (0, 0, 0),
        )
    draw_text(
        d,
        (x0 + bw if out else x0 + 4, y + bh + 3),
        stamp,
        10,
        (140, 140, 145),
        anchor="ra" if out else "la",
    )
    return y + bh + 22


def _chat(im, d, W, bottom) -> None:
    """Every message of ``_CHAT`` top-down until the next one would pass ``bottom``."""
    y, minute = 128, 9 * 60 + 2
    for k, (who, text) in enumerate(_CHAT):
        minute += 3 + (k * 7) % 11
        if who == "day":
            lw = text_width(text, 11)
            d.rounded_rectangle(
                [W / 2 - lw / 2 - 10, y, W / 2 + lw / 2 + 10, y + 20], radius=10, fill=(235, 235, 240)
            )
            draw_text(d, (W // 2, y + 4), text, 11, (110, 110, 115), anchor="ma")
            y, minute = y + 34, (9 * 60 + 9 if text.startswith("Today") else 8 * 60 + 40 + k % 20)
            continue
        if who in ("link", "receipt"):
            y = (_link_card if who == "link" else _receipt)(im, d, W, y, text, bottom)
        else:
            out = who == "out"
            stamp = f"{minute // 60 % 24:02d}:{minute % 60:02d}" + ("  Read" if out and k % 3 == 0 else "")
            y = _bubble(d, W, y, text, out, stamp, bottom)
        if y is None:
            break


def _input_bar(d, W, H) -> None:
    """The input bar and the home indicator."""
    d.rectangle([0, H - 84, W, H], fill=(247, 247, 249))
    d.line([(0, H - 84), (W, H - 84)], fill=(210, 210, 215))
    d.ellipse([14, H - 70, 44, H - 40], fill=(225, 225, 230))
    draw_text(d, (29, H - 55), "+", 20, (110, 110, 115), anchor="mm")
    d.rounded_rectangle([56, H - 72, W - 60, H - 38], radius=17, outline=(200, 200, 205), width=1)
    draw_text(d, (72, H - 63), "iMessage", 14, (160, 160, 165))
    d.rounded_rectangle([W - 46, H - 68, W - 34, H - 50], radius=6, outline=(110, 110, 115), width=2)  # mic
    d.line([(W - 40, H - 50), (W - 40, H - 43)], fill=(110, 110, 115), width=2)
    d.rounded_rectangle([W // 2 - 70, H - 14, W // 2 + 70, H - 9], radius=3, fill=(0, 0, 0))


def draw_phone_screenshot() -> Image.Image:
    """600x2400 scrolling chat screenshot: status bar, header, bubbles of small text, a receipt, input bar."""
    W, H = 600, 2400
    im = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(im)
    _status_bar(d, W)
    _phone_header(d, W)
    _chat(im, d, W, H - 100)
    _input_bar(d, W, H)
    return im


# ============================================================================================ chart


def draw_icon() -> Image.Image:
    """64x48 RGBA 'photo' icon with transparent rounded corners and 1-pixel details."""
    W, H = 64, 48
    body = vertical_gradient(W, H, [(0, (90, 170, 250)), (1, (30, 90, 200))])
    rgba = np.dstack([body, np.zeros((H, W), np.uint8)])
    mask = Image.new("L", (W, H), 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, W - 1, H - 1], radius=9, fill=255)
    rgba[..., 3] = np.asarray(mask)
    im = Image.fromarray(rgba)  # (H, W, 4) -> RGBA
    d = ImageDraw.Draw(im)
    d.rounded_rectangle([8, 8, W - 9, H - 9], radius=3, fill=(245, 248, 255, 255), outline=(20, 50, 120, 255))
    d.polygon([(10, 37), (24, 20), (33, 30), (40, 24), (54, 37)], fill=(60, 150, 90, 255))  # hills
    d.polygon([(24, 20), (27, 24), (21, 24)], fill=(255, 255, 255, 255))  # snow cap
    d.ellipse([44, 12, 51, 19], fill=(255, 190, 40, 255))  # sun
    d.rectangle([W - 15, 2, W - 5, 6], fill=(255, 255, 255, 200))  # a tiny shutter button
    return im


def draw_strip() -> Image.Image:
    """20x2000 ruler: a colour ramp, 1-pixel ticks every 10 px and tiny labels every 100 px."""
    W, H = 20, 2000
    stops = [
        (0, (68, 1, 84)),
        (0.25, (59, 82, 139)),
        (0.5, (33, 145, 140)),
        (0.75, (94, 201, 98)),
        (1, (253, 231, 37)),
    ]  # viridis-like ramp
    arr = np.full((H, W, 3), 255, np.uint8)
    arr[:, :6] = vertical_gradient(6, H, stops)
    im = Image.fromarray(arr)
    d = ImageDraw.Draw(im)
    for y in range(0, H, 10):
        length = 12 if y % 100 == 0 else (7 if y % 50 == 0 else 3)
        d.line([(6, y), (6 + length, y)], fill=(0, 0, 0))
    for y in range(100, H, 100):
        draw_text(d, (19, y + 2), str(y // 100), 9, (0, 0, 0), anchor="ra")
    d.line([(W - 1, 0), (W - 1, H - 1)], fill=(120, 120, 120))
    return im


#: name -> function drawing that synthetic image
