"""worldmodel: learn a small world from video and text, and imagine it forward."""

__version__ = "0.1.0"
