"""Image sizes read from file headers, so an image too big to decode is refused before a pixel is decoded.

A 2 MB PNG can claim 27000 x 27000 pixels (2 GB once decoded), and a header alone can claim 100000 x 100000.
:func:`image_size` reads the width and height of PNG, JPEG, BMP, WebP and TIFF files from their first bytes
(by content, whatever the file's extension); :func:`check_pixels` refuses a frame above ``MAX_FRAME_PIXELS``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from .runner import InvalidInput

MAX_FRAME_PIXELS = 8192 * 8192
"""The most pixels one input frame (an image, a video frame, an uploaded array) may have: 8K by 8K, about
200 MB once decoded to RGB. Above it decoding alone could exhaust memory or crash a decoder."""

FORMATS = "PNG, JPEG, BMP, WebP or TIFF"


def check_pixels(name: str, width: int, height: int, what: str) -> None:
    """Raise :class:`InvalidInput` (field ``name``) when ``width`` x ``height`` is above ``MAX_FRAME_PIXELS``."""
    if width * height > MAX_FRAME_PIXELS:
        raise InvalidInput(
            name,
            f"{what} is {width}x{height} pixels, more than the {MAX_FRAME_PIXELS // 1_000_000} megapixels "
            "(8192x8192) a frame may have: scale it down first",
        )


def image_size(name: str, path: Path) -> tuple[int, int]:
    """(width, height) from the header of the image at ``path``. Raises :class:`InvalidInput` (field ``name``)
    for a file whose header is not one of the formats read here, or is cut short."""
    try:
        with open(path, "rb") as f:
            size = _read_size(f)
    except (OSError, struct.error, ValueError):
        size = None
    if size is None:
        raise InvalidInput(name, f"could not read image {path}: is it a {FORMATS} file?")
    return size


def _read_size(f: BinaryIO) -> tuple[int, int] | None:
    head = f.read(32)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(f)
    if head.startswith(b"BM"):
        if struct.unpack("<I", head[14:18])[0] == 12:  # the old OS/2 header: 16-bit sizes
            return struct.unpack("<HH", head[18:22])
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)  # a negative height means rows stored top-down
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head[:4] in (b"II*\0", b"MM\0*"):
        return _tiff_size(f, "<" if head[:2] == b"II" else ">")
    return None


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    f.seek(2)
    while True:
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind == 0xFF:  # fill byte: the marker follows
            f.seek(-1, 1)
            continue
        if kind in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            continue
        (length,) = struct.unpack(">H", f.read(2))
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):  # start of frame: precision, height, width
            _, height, width = struct.unpack(">BHH", f.read(5))
            return width, height
        f.seek(length - 2, 1)


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        (bits,) = struct.unpack("<I", head[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _tiff_size(f: BinaryIO, order: str) -> tuple[int, int] | None:
    f.seek(4)
    (offset,) = struct.unpack(f"{order}I", f.read(4))
    f.seek(offset)
    (count,) = struct.unpack(f"{order}H", f.read(2))
    found: dict[int, int] = {}
    for _ in range(min(count, 4096)):
        tag, kind, _, value = struct.unpack(f"{order}HHI4s", f.read(12))
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            found[tag] = struct.unpack(f"{order}H", value[:2])[0] if kind == 3 else struct.unpack(f"{order}I", value)[0]
    return (found[256], found[257]) if len(found) == 2 else None
