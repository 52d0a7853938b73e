"""What an uploaded image is and how large it claims to be, read from its header only.

The server decodes no pixels: it reads the type and the declared width and height of a PNG,
JPEG, GIF, WebP or BMP file, so that a non-image, an empty image or one too large to decode (a
decompression bomb declares a huge size in a small file) is refused before it reaches a worker.
The worker checks again as it decodes (trainhub.worker.images).
"""

import struct
from dataclasses import dataclass

IMAGE_TYPES = "PNG, JPEG, GIF, WebP or BMP"
# JPEG start-of-frame markers: they hold the size (not C4, C8, CC: DHT, JPG, DAC)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageError(ValueError):
    """The bytes are not an image of a known type, or its header is broken."""


@dataclass(frozen=True)
class ImageInfo:
    """An image's media type and the size its header declares, in pixels."""

    media_type: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Return width times height."""
        return self.width * self.height


def _png(data: bytes) -> ImageInfo:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError("the PNG file has no IHDR header")
    width, height = struct.unpack(">II", data[16:24])
    return ImageInfo("image/png", width, height)


def _gif(data: bytes) -> ImageInfo:
    if len(data) < 10:
        raise ImageError("the GIF file is truncated")
    width, height = struct.unpack("<HH", data[6:10])
    return ImageInfo("image/gif", width, height)


def _bmp(data: bytes) -> ImageInfo:
    if len(data) < 26:
        raise ImageError("the BMP file is truncated")
    width, height = struct.unpack("<ii", data[18:26])
    return ImageInfo("image/bmp", abs(width), abs(height))  # negative height: top-down rows


def _webp(data: bytes) -> ImageInfo:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    elif chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[26:30]))
    elif chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise ImageError("the WebP file has no VP8, VP8L or VP8X header")
    return ImageInfo("image/webp", width, height)


def _jpeg(data: bytes) -> ImageInfo:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise ImageError("the JPEG file has a broken marker")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _SOF:
            if at + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return ImageInfo("image/jpeg", width, height)
        if marker == 0xD9 or length < 2:
            break
        at += 2 + length
    raise ImageError("the JPEG file has no frame header")


def read_image_info(data: bytes) -> ImageInfo:
    """Return the type and declared size of an image; ImageError for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:2] == b"BM":
        return _bmp(data)
    raise ImageError(f"the file is not an image; send a {IMAGE_TYPES} file")
