"""What the server reads from an image's header before it queues a prediction (server/images.py)."""

import struct
import zlib

import pytest

from trainhub.server.images import ImageError, read_image_info


def png_header(width: int, height: int) -> bytes:
    body = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + body))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + body + crc


def jpeg_header(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    exif = b"\xff\xe1" + struct.pack(">H", 1000) + b"\x00" * 998  # a large segment to skip
    sof = b"\xff\xc2" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + exif + b"\xff\xff" + sof + b"\xff\xd9"


def webp(chunk: bytes, body: bytes) -> bytes:
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(body))
        + b"WEBP"
        + chunk
        + struct.pack("<I", len(body))
        + body
    )


CASES = [
    (png_header(640, 480), ("image/png", 640, 480)),
    (png_header(0, 0), ("image/png", 0, 0)),
    (jpeg_header(4000, 3000), ("image/jpeg", 4000, 3000)),
    (b"GIF89a" + struct.pack("<HH", 320, 200) + b"\x00" * 4, ("image/gif", 320, 200)),
    (b"BM" + b"\x00" * 16 + struct.pack("<ii", 100, -50) + b"\x00" * 8, ("image/bmp", 100, 50)),
    (
        webp(b"VP8X", b"\x00" * 4 + (1919).to_bytes(3, "little") + (1079).to_bytes(3, "little")),
        ("image/webp", 1920, 1080),
    ),
    (
        webp(b"VP8 ", b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", 800, 600)),
        ("image/webp", 800, 600),
    ),
    (webp(b"VP8L", b"\x2f" + ((99) | (49 << 14)).to_bytes(4, "little")), ("image/webp", 100, 50)),
]


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_the_size_is_read_from_the_header(data: bytes, expected) -> None:
    info = read_image_info(data)
    assert (info.media_type, info.width, info.height) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xe0\x00",
        b"RIFF\x00\x00\x00\x00WEBPVP8Z",
        b"\xff\xd8\xff\xe0" + struct.pack(">H", 1) + b"\x00" * 10,
        b"GIF89a\x01",
    ],
)
def test_anything_else_is_an_image_error(data: bytes) -> None:
    with pytest.raises(ImageError):
        read_image_info(data)
