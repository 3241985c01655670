"""Limits of the generation arguments, importable without torch so that the CLI checks them before any work."""

from __future__ import annotations

from typing import Any

MAX_LENGTH_FACTOR = 16  # the longest video is this many training lengths (sliding window over latent frames)
MAX_GUIDANCE = 100.0  # classifier-free guidance scales beyond this only amplify noise


def max_frames(temporal_compression: int, latent_frames: int) -> int:
    """The longest video a model of ``latent_frames`` latent frames makes (``MAX_LENGTH_FACTOR`` windows)."""
    return 1 + temporal_compression * (MAX_LENGTH_FACTOR * latent_frames - 1)


def check_num_frames(num_frames: Any, temporal_compression: int, longest: int, what: str = "num_frames") -> None:
    """Raise a clear ``ValueError`` unless ``num_frames`` is ``1 + tc * k`` and at most ``longest``."""
    tc = temporal_compression
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1 or (num_frames - 1) % tc:
        raise ValueError(f"{what} must be 1 + {tc} * k video frames (e.g. {1 + tc}, {1 + 2 * tc}, {1 + 4 * tc}) "
                         f"for this tokenizer's temporal compression {tc}, got {num_frames!r}")
    if num_frames > longest:
        raise ValueError(f"{what} must be at most {longest}, the longest video this model makes "
                         f"({MAX_LENGTH_FACTOR} times its training length), got {num_frames}")
