"""The app's two icons, drawn in pure Python and written as PNG (zlib + struct, no Pillow).

Teams wants a full-colour 192x192 icon and a 32x32 outline icon that is white on a transparent
background. Both show the same mark: a person with a "+" badge (a freelancer joining a team).
The drawing is deterministic, so `python -m manifest.build` always gives the same pixels; the
tests compare the committed PNGs' pixels (not their compressed bytes) with `color_pixels()` and
`outline_pixels()`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

COLOR_SIZE = 192
OUTLINE_SIZE = 32
ACCENT = (0x3D, 0x4E, 0xB8)  # the manifest's accentColor (#3D4EB8)
WHITE = (0xFF, 0xFF, 0xFF)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Shape = Callable[[float, float], bool]  # (x, y) in 0..1 unit square -> inside?

_SAMPLES = 4  # supersampling per axis (4 x 4 = 16 samples per pixel) for smooth edges


# --- shapes in the unit square -----------------------------------------------------------------


def _circle(cx: float, cy: float, r: float) -> Shape:
    return lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def _ring(cx: float, cy: float, r: float, width: float) -> Shape:
    return lambda x, y: (r - width) ** 2 <= (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def _rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float) -> Shape:
    def inside(x: float, y: float) -> bool:
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return False
        cx = min(max(x, x0 + r), x1 - r)
        cy = min(max(y, y0 + r), y1 - r)
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r

    return inside


def _shoulders(cx: float, top: float, r: float) -> Shape:
    """The upper half of a disc (a person's shoulders), cut flat at the bottom."""
    return lambda x, y: top <= y <= top + r and (x - cx) ** 2 + (y - top - r) ** 2 <= r * r


def _shoulders_outline(cx: float, top: float, r: float, width: float) -> Shape:
    outer = _shoulders(cx, top, r)

    def inside(x: float, y: float) -> bool:
        if not outer(x, y):
            return False
        inner_r = r - width
        in_inner = (
            top + width <= y <= top + r - width
            and (x - cx) ** 2 + (y - top - r) ** 2 <= inner_r**2
        )
        return not in_inner

    return inside


def _plus(cx: float, cy: float, arm: float, width: float) -> Shape:
    half = width / 2
    return lambda x, y: (
        (abs(x - cx) <= half and abs(y - cy) <= arm)
        or (abs(y - cy) <= half and abs(x - cx) <= arm)
    )


def _any(*shapes: Shape) -> Shape:
    return lambda x, y: any(shape(x, y) for shape in shapes)


def _minus(shape: Shape, hole: Shape) -> Shape:
    return lambda x, y: shape(x, y) and not hole(x, y)


# --- the mark -------------------------------------------------------------------------------

# Filled mark for the colour icon: head, shoulders and a "+" badge on a disc.
_BADGE = _circle(0.70, 0.68, 0.17)
_PERSON = _any(_circle(0.42, 0.33, 0.13), _shoulders(0.42, 0.52, 0.25))
_COLOR_MARK = _any(_minus(_PERSON, _circle(0.70, 0.68, 0.21)), _BADGE)
_BADGE_PLUS = _plus(0.70, 0.68, 0.10, 0.055)

# Outline mark (white strokes on transparent), drawn bolder so it reads at 32 px.
_OUTLINE_MARK = _any(
    _ring(0.40, 0.30, 0.17, 0.075),
    _minus(_shoulders_outline(0.40, 0.55, 0.33, 0.075), _circle(0.74, 0.72, 0.25)),
    _ring(0.74, 0.72, 0.21, 0.075),
    _plus(0.74, 0.72, 0.11, 0.075),
)


def _coverage(shape: Shape, px: int, py: int, size: int) -> float:
    corners = {shape((px + dx) / size, (py + dy) / size) for dx in (0.0, 1.0) for dy in (0.0, 1.0)}
    if len(corners) == 1:  # no edge crosses this pixel (every stroke is wider than a pixel)
        return 1.0 if corners.pop() else 0.0
    hits = 0
    for sy in range(_SAMPLES):
        for sx in range(_SAMPLES):
            x = (px + (sx + 0.5) / _SAMPLES) / size
            y = (py + (sy + 0.5) / _SAMPLES) / size
            hits += shape(x, y)
    return hits / (_SAMPLES * _SAMPLES)


RGB = tuple[int, int, int]


def _blend(under: RGB, over: RGB, alpha: float) -> RGB:
    r, g, b = (round(u + (o - u) * alpha) for u, o in zip(under, over, strict=True))
    return r, g, b


def color_pixels(size: int = COLOR_SIZE) -> list[bytes]:
    """RGBA rows of the colour icon: a white mark on an accent-coloured rounded square."""
    tile = _rounded_rect(0.0, 0.0, 1.0, 1.0, 0.18)
    rows = []
    for py in range(size):
        row = bytearray()
        for px in range(size):
            tile_alpha = _coverage(tile, px, py, size)
            if tile_alpha == 0:
                row += b"\x00\x00\x00\x00"
                continue
            mark = _coverage(_COLOR_MARK, px, py, size)
            plus = _coverage(_BADGE_PLUS, px, py, size)
            rgb = _blend(_blend(ACCENT, WHITE, mark), ACCENT, plus)
            row += bytes([*rgb, round(255 * tile_alpha)])
        rows.append(bytes(row))
    return rows


def outline_pixels(size: int = OUTLINE_SIZE) -> list[bytes]:
    """RGBA rows of the outline icon: white strokes, transparent everywhere else."""
    rows = []
    for py in range(size):
        row = bytearray()
        for px in range(size):
            alpha = _coverage(_OUTLINE_MARK, px, py, size)
            row += bytes([255, 255, 255, round(255 * alpha)]) if alpha else b"\x00\x00\x00\x00"
        rows.append(bytes(row))
    return rows


# --- PNG ------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(rows: list[bytes]) -> bytes:
    """An 8-bit RGBA PNG of `rows` (each row: width * 4 bytes), every scanline unfiltered."""
    height = len(rows)
    width = len(rows[0]) // 4 if rows else 0
    if width == 0 or any(len(row) != width * 4 for row in rows):
        raise ValueError("rows must be non-empty RGBA scanlines of equal width")
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 (None) per scanline
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def write_icons(folder: Path) -> tuple[Path, Path]:
    """Writes color.png and outline.png into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    color = folder / "color.png"
    outline = folder / "outline.png"
    _write_if_changed(color, color_pixels())
    _write_if_changed(outline, outline_pixels())
    return color, outline


def _write_if_changed(path: Path, rows: list[bytes]) -> None:
    """Leaves a PNG with the same pixels alone, so another zlib (whose compressed bytes may
    differ) doesn't make a committed icon look changed."""
    if path.exists():
        try:
            if read_png(path.read_bytes())[4] == rows:
                return
        except (ValueError, zlib.error, struct.error):
            pass
    path.write_bytes(png_bytes(rows))


# --- reading back (for the tests) ---------------------------------------------------------------


def read_png(data: bytes) -> tuple[int, int, int, int, list[bytes]]:
    """(width, height, bit depth, colour type, unfiltered RGBA rows) of a PNG written by
    `png_bytes` (or any 8-bit RGBA PNG whose scanlines use the five standard filters)."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    pos = len(PNG_SIGNATURE)
    header = b""
    idat = b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if (
            zlib.crc32(kind + body) & 0xFFFFFFFF
            != struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        ):
            raise ValueError(f"bad CRC in {kind!r}")
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color_type = struct.unpack(">IIBB", header[:10])
    if (depth, color_type) != (8, 6):
        return width, height, depth, color_type, []
    raw = zlib.decompress(idat)
    stride = width * 4
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind_byte = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - 4] if i >= 4 else 0
            up = previous[i]
            up_left = previous[i - 4] if i >= 4 else 0
            if kind_byte == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind_byte == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind_byte == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind_byte == 4:
                line[i] = (line[i] + _paeth(left, up, up_left)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, depth, color_type, rows


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


__all__ = [
    "ACCENT",
    "COLOR_SIZE",
    "OUTLINE_SIZE",
    "color_pixels",
    "outline_pixels",
    "png_bytes",
    "read_png",
    "write_icons",
]
