"""Reading an uploaded video safely: check the frame size before decoding, decode only the frames needed."""

from __future__ import annotations

import io

import av
import numpy as np


class UploadError(ValueError):
    """An uploaded file is not a usable video; the message is one sentence for the client."""


def read_context(data: bytes, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    """The first ``num_frames`` frames of the video file ``data`` as uint8 ``(T, H, W, 3)``.

    Raises :class:`UploadError` when ``data`` is not a decodable video, its frames are not ``size``
    ``(height, width)``, or it has fewer than ``num_frames`` frames. Frames are never decoded past
    ``num_frames``, so a small file that expands to a huge video costs nothing.
    """
    height, width = size
    if not data:
        raise UploadError("the uploaded video is empty (0 bytes)")
    frames = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise UploadError("the uploaded file has no video stream")
            stream = container.streams.video[0]
            if (stream.codec_context.height, stream.codec_context.width) != (height, width):
                raise UploadError(f"the uploaded video is {stream.codec_context.height}x{stream.codec_context.width}"
                                  f" pixels but the model works on {height}x{width}")
            for frame in container.decode(stream):
                if (frame.height, frame.width) != (height, width):
                    raise UploadError(f"a frame of the uploaded video is {frame.height}x{frame.width} pixels but "
                                      f"the model works on {height}x{width}")
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == num_frames:
                    break
    except UploadError:
        raise
    except (av.FFmpegError, ValueError, OSError) as err:
        raise UploadError(f"the uploaded file could not be decoded as a video ({type(err).__name__})") from err
    if len(frames) < num_frames:
        raise UploadError(f"the uploaded video has {len(frames)} frames, fewer than context_frames={num_frames}")
    return np.stack(frames)
