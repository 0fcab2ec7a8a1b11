"""PNG files from numpy arrays without an image library (numpy, zlib and struct only), for both sides.

- :func:`encode_rgb`: 8-bit truecolour, every row with the "Up" filter (consecutive video rows compress well):
  the add-on's live recordings, where Blender has no OpenCV.
- :func:`encode_indexed`: 8-bit palette images (:class:`IndexedImage`), rows unfiltered, zlib's run-length
  strategy: the daemon's skeleton frames on black, which use a few dozen colours over mostly empty rows. One byte
  a pixel instead of three, so a frame costs about a quarter of the CPU of a truecolour PNG, and decodes to the
  same RGB values in every PNG reader (Blender's, OpenCV's, Pillow's).

zlib level 1 throughout: these files are intermediate frames, written while a job or a camera runs.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
LEVEL = 1
"""zlib level: the fastest."""
_TRUECOLOUR, _PALETTE = 2, 3
_FILTER_NONE, _FILTER_UP = 0, 2


class IndexedImage(NamedTuple):
    """An image as palette indices: ``indices`` uint8 (height, width), ``palette`` uint8 (colours, 3) RGB with at
    most 256 colours; pixel (y, x) is ``palette[indices[y, x]]``."""

    indices: np.ndarray
    palette: np.ndarray

    def rgb(self) -> np.ndarray:
        """The image as RGB uint8 (height, width, 3)."""
        return np.take(self.palette, self.indices, axis=0)


def encode_rgb(rgb: np.ndarray) -> bytes:
    """An RGB uint8 (height, width, 3) image as PNG bytes (8-bit truecolour, every row "Up"-filtered)."""
    height, width = rgb.shape[:2]
    rows = np.ascontiguousarray(rgb, dtype=np.uint8).reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    filtered[:, 0] = _FILTER_UP  # each byte minus the byte above it (modulo 256); the first row is kept as is
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    return _png(width, height, _TRUECOLOUR, None, zlib.compress(filtered.tobytes(), LEVEL))


def encode_indexed(image: IndexedImage) -> bytes:
    """``image`` as an 8-bit palette PNG (rows unfiltered, compressed with zlib's run-length strategy)."""
    indices, palette = image
    if indices.dtype != np.uint8 or indices.ndim != 2:
        raise ValueError(f"palette indices must be uint8 (height, width), got {indices.dtype} {indices.shape}")
    if palette.dtype != np.uint8 or palette.ndim != 2 or palette.shape[1] != 3 or not 1 <= len(palette) <= 256:
        raise ValueError(f"a palette must be 1-256 RGB uint8 colours, got {palette.dtype} {palette.shape}")
    height, width = indices.shape
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = _FILTER_NONE
    rows[:, 1:] = indices
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_RLE)
    pixels = packer.compress(rows.data) + packer.flush()
    return _png(width, height, _PALETTE, palette.tobytes(), pixels)


def _png(width: int, height: int, colour_type: int, palette: bytes | None, pixels: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    chunks = [_chunk(b"IHDR", header)]
    if palette is not None:
        chunks.append(_chunk(b"PLTE", palette))
    chunks += [_chunk(b"IDAT", pixels), _chunk(b"IEND", b"")]
    return SIGNATURE + b"".join(chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
