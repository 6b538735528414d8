"""Recordings of evaluation episodes a person can watch: GIF (Pillow) or MP4 (ffmpeg)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

SCALE = 4  # 64 x 112 frames are tiny; nearest-neighbour upscaling keeps them crisp


class RecordError(RuntimeError):
    """The recording cannot be written (unknown format, no encoder)."""


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """``[3, H, W]`` uint8 frame → ``[H*SCALE + 16, W*SCALE, 3]`` with ``text`` under it."""
    from PIL import Image, ImageDraw

    hwc = np.ascontiguousarray(frame.transpose(1, 2, 0))
    image = Image.fromarray(hwc).resize((hwc.shape[1] * SCALE, hwc.shape[0] * SCALE),
                                        Image.NEAREST)
    canvas = Image.new("RGB", (image.width, image.height + 16))
    canvas.paste(image, (0, 0))
    ImageDraw.Draw(canvas).text((4, image.height + 2), text, fill=(255, 255, 255))
    return np.asarray(canvas)


def check_target(path: Path) -> None:
    """Fails early for a recording that could not be written (before hours of playing).

    Raises:
        RecordError: not ``.gif`` or ``.mp4``, or MP4 without an ffmpeg binary.
    """
    if path.suffix not in (".gif", ".mp4"):
        raise RecordError(f"{path}: record to a .gif or an .mp4 file")
    if path.suffix == ".mp4" and not shutil.which("ffmpeg"):
        _bundled_ffmpeg()


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """Writes ``[H, W, 3]`` uint8 frames as ``.gif`` or ``.mp4`` (by the suffix).

    Raises:
        RecordError: another suffix, or MP4 without an ffmpeg binary.
    """
    if not frames:
        raise RecordError("nothing to record")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                       duration=round(1000 / fps), optimize=False)
        return
    if path.suffix != ".mp4":
        raise RecordError(f"{path}: record to a .gif or an .mp4 file")
    ffmpeg = shutil.which("ffmpeg") or _bundled_ffmpeg()
    height, width = frames[0].shape[:2]
    command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", f"{fps}", "-i", "-", "-pix_fmt", "yuv420p",
               "-vcodec", "libx264", str(path)]
    done = subprocess.run(command, input=b"".join(f.tobytes() for f in frames),
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise RecordError(f"ffmpeg failed: {done.stderr.decode(errors='replace')[-300:]}")


def _bundled_ffmpeg() -> str:
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found]
    except ImportError:
        raise RecordError("MP4 needs ffmpeg on PATH (apt-get install ffmpeg) or "
                          "`pip install imageio-ffmpeg`; or record to a .gif") from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())
