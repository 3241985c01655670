"""Named ball colours and the background: saturated, far apart in RGB, easy to threshold.

The evaluation tracker finds balls by colour, so every colour here differs from every other and
from the background by at least ~100 in some RGB channel.
"""

from __future__ import annotations

import re

BACKGROUND: tuple[int, int, int] = (20, 20, 24)

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 90, 240),
    "yellow": (240, 230, 30),
    "purple": (150, 50, 210),
    "orange": (250, 130, 0),
    "cyan": (30, 220, 230),
    "white": (245, 245, 245),
}

COLOR_NAMES: tuple[str, ...] = tuple(PALETTE)

_COLOUR_WORD = re.compile(r"\b(" + "|".join(COLOR_NAMES) + r")\b")


def caption_colours(caption: str) -> list[str]:
    """The palette colour names in `caption`, in order of appearance (whole words, repeats kept)."""
    return _COLOUR_WORD.findall(caption.lower())
