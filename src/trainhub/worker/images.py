"""Decoding an uploaded image for a prediction, with the size checked before any pixel is made."""

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageRefusedError(Exception):
    """The image cannot be predicted on: its status (413, 422) and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_image(data: bytes, max_pixels: int) -> NDArray[np.uint8]:
    """Return the image as BGR pixels (height, width, 3), upright as its EXIF says.

    The server checked the header already; this checks again before decoding, because the
    worker must not run out of memory on what a client sent (a decompression bomb).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width == 0 or height == 0:
                raise ImageRefusedError(422, "the image has no pixels")
            if width * height > max_pixels:
                raise ImageRefusedError(
                    413, f"the image is {width}x{height} pixels, above the server's limit"
                )
            upright = ImageOps.exif_transpose(image) or image
            rgb = upright.convert("RGB")
            return np.asarray(rgb)[:, :, ::-1].copy()
    except ImageRefusedError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRefusedError(413, f"the image is too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRefusedError(
            422,
            f"the image could not be decoded ({exc}); send a complete PNG, JPEG, GIF, WebP "
            "or BMP file",
        ) from exc
