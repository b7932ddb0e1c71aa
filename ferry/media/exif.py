"""EXIF: the orientation an image is shown in, and the fields that may leave the file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from PIL import Image

# EXIF kept in metadata: an allow-list, so GPS (IFD 34853), serial numbers, owner
# names, maker notes, free-text comments and time zone offsets (a coarse location)
# never leave the file.
_PUBLIC_IFD0 = {
    271: "Make",
    272: "Model",
    274: "Orientation",
    282: "XResolution",
    283: "YResolution",
    296: "ResolutionUnit",
    305: "Software",
    306: "DateTime",
}
_PUBLIC_EXIF_IFD = {
    33434: "ExposureTime",
    33437: "FNumber",
    34850: "ExposureProgram",
    34855: "ISOSpeedRatings",
    36867: "DateTimeOriginal",
    36868: "DateTimeDigitized",
    37383: "MeteringMode",
    37385: "Flash",
    37386: "FocalLength",
    40961: "ColorSpace",
    40962: "PixelXDimension",
    40963: "PixelYDimension",
    41986: "ExposureMode",
    41987: "WhiteBalance",
    41989: "FocalLengthIn35mmFilm",
    42035: "LensMake",
    42036: "LensModel",
}
_EXIF_IFD_POINTER = 0x8769
_ORIENTATION = 274


def read_exif(image: Image.Image) -> Image.Exif:
    """The image's EXIF, empty when there is none or it is broken."""
    # A PNG's eXIf chunk may follow the pixel data; looking for it would decode them.
    if image.format == "PNG" and "exif" not in image.info:
        return Image.Exif()
    try:
        return image.getexif()
    except Exception:  # broken EXIF says nothing about the pixels
        return Image.Exif()


def display_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as shown, after the EXIF orientation."""
    width, height = image.size
    rotated = read_exif(image).get(_ORIENTATION) in (5, 6, 7, 8)
    return (height, width) if rotated else (width, height)


def _exif_value(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    elif isinstance(value, tuple):
        value = ",".join(filter(None, (_exif_value(item) for item in value)))
    elif not isinstance(value, int | str):
        try:
            number = float(value)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        value = "" if number != number else f"{number:g}"
    text = re.sub(r"[\x00-\x1f\x7f]", "", str(value)).strip()
    return text[:128] or None


def public_exif(exif: Image.Exif) -> dict[str, str]:
    """The allow-listed EXIF fields as strings; nothing from the GPS IFD, ever."""
    result: dict[str, str] = {}
    tables: list[tuple[Mapping[int, Any], dict[int, str]]] = [(exif, _PUBLIC_IFD0)]
    with suppress(Exception):
        tables.append((exif.get_ifd(_EXIF_IFD_POINTER), _PUBLIC_EXIF_IFD))
    for values, names in tables:
        for tag, name in names.items():
            if tag in values and (text := _exif_value(values[tag])) is not None:
                result[name] = text
    return {key: value for key, value in result.items() if "gps" not in key.lower()}
