"""Channels of the OpenEXR files Blender renders passes into: uncompressed scanline images, single-part (Blender
4.x multilayer) or multi-part (Blender 5.x multilayer, one part per pass).

Blender can write a render's passes only to files; the add-on asks for ``exr_codec = 'NONE'`` and reads them
back here, without OpenEXR or OpenCV (which Blender does not ship to add-ons). Other compressions, tiled and
deep images are refused with :class:`ExrError` naming what the file uses.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = b"\x76\x2f\x31\x01"
MULTI_PART = 0x1000
TILED = 0x200
PIXEL_TYPES: dict[int, np.dtype] = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}


class ExrError(ValueError):
    """The file is not an EXR this reader handles; the message says why."""


def _string(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode("utf-8"), end + 1


def _header(data: bytes, at: int) -> tuple[dict[str, bytes], int]:
    attributes: dict[str, bytes] = {}
    while data[at] != 0:
        name, at = _string(data, at)
        _kind, at = _string(data, at)
        (size,) = struct.unpack_from("<i", data, at)
        attributes[name] = data[at + 4 : at + 4 + size]
        at += 4 + size
    return attributes, at + 1


def _channels(chlist: bytes) -> list[tuple[str, np.dtype]]:
    channels: list[tuple[str, np.dtype]] = []
    at = 0
    while chlist[at] != 0:
        name, at = _string(chlist, at)
        pixel_type, _linear, x_sampling, y_sampling = struct.unpack_from("<iB3xii", chlist, at)
        at += 16
        if (x_sampling, y_sampling) != (1, 1):
            raise ExrError(f"channel {name} is subsampled; only full-resolution channels are read")
        channels.append((name, PIXEL_TYPES[pixel_type]))
    return channels


def read_exr_channels(path: Path | str) -> dict[str, np.ndarray]:
    """Every channel of the file at ``path`` as a float32 (height, width) array, top row first, by its full name
    (``ViewLayer.Depth.Z``, ``ViewLayer.Combined.R``, ...)."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ExrError(f"{path} is not an OpenEXR file")
    (flags,) = struct.unpack_from("<I", data, 4)
    if flags & TILED:
        raise ExrError(f"{path} is tiled; render passes are read from scanline files")
    headers = []
    at = 8
    while True:
        header, at = _header(data, at)
        headers.append(header)
        if not flags & MULTI_PART or data[at] == 0:
            break
    at += 1 if flags & MULTI_PART else 0
    parts = []
    for header in headers:
        if header["compression"] != b"\x00":
            raise ExrError(f"{path} is compressed (method {header['compression'][0]}); render with exr_codec NONE")
        x_min, y_min, x_max, y_max = struct.unpack("<4i", header["dataWindow"])
        width, height = x_max - x_min + 1, y_max - y_min + 1
        parts.append((_channels(header["channels"]), width, height, y_min))
        at += 8 * height  # the part's offset table: one chunk per scanline when uncompressed
    result: dict[str, np.ndarray] = {}
    for channels, width, height, _ in parts:
        for name, _dtype in channels:
            result[name] = np.zeros((height, width), np.float32)
    for _ in range(sum(height for _, _, height, _ in parts)):
        part = 0
        if flags & MULTI_PART:
            (part,) = struct.unpack_from("<i", data, at)
            at += 4
        channels, width, height, y_min = parts[part]
        y, size = struct.unpack_from("<ii", data, at)
        at += 8
        row = y - y_min
        offset = at
        for name, dtype in channels:
            result[name][row] = np.frombuffer(data, dtype, width, offset)
            offset += dtype.itemsize * width
        at += size
    return result
