"""G4 page coding through libtiff, checked against Pillow's decoder."""

from __future__ import annotations

import pytest
from PIL import Image, ImageChops

from faxgate.documents.faxtiff import decode_page, encode_g4


@pytest.mark.parametrize("width", [1728, 1001])
def test_g4_page_decodes_exactly(width: int) -> None:
    # Random pixels give many run lengths and coding modes. A width that is not a multiple
    # of 8 checks the padding bits at the end of each row.
    noise = Image.effect_noise((width, 300), 128).convert("1", dither=Image.Dither.NONE)
    page = encode_g4(noise, 204, 196)
    assert (page.width, page.height, page.ydpi) == (width, 300, 196)
    decoded = ImageChops.invert(decode_page(page).convert("L"))
    assert ImageChops.difference(decoded, noise.convert("L")).getbbox() is None


def test_g4_blank_page_is_small() -> None:
    blank = Image.new("1", (1728, 2292), 0)
    page = encode_g4(blank, 204, 196)
    assert len(page.g4) < 2000
    assert decode_page(page).convert("L").getextrema() == (255, 255)
