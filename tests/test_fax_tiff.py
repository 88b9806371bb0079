"""Class F checks and row reading in faxgate.fax.tiff, on TIFFs drawn with Pillow."""

from __future__ import annotations

from pathlib import Path

import pytest
from fax_documents import draw_page, make_fax_tiff
from PIL import Image

from faxgate.errors import DocumentError
from faxgate.fax.tiff import (
    FaxPage,
    count_row_differences,
    read_fax_pages,
    validate_fax_tiff,
)


def test_validate_fine_group4(tmp_path: Path) -> None:
    path = make_fax_tiff(tmp_path / "fine.tif", 3, "fine", "group4")

    info = validate_fax_tiff(path)

    assert info.pages == 3
    assert info.resolution == "fine"
    assert info.compression == "group4"


def test_validate_standard_group3(tmp_path: Path) -> None:
    path = make_fax_tiff(tmp_path / "standard.tif", 1, "standard", "group3")

    info = validate_fax_tiff(path)

    assert info.pages == 1
    assert info.resolution == "standard"
    assert info.compression == "group3"


def test_validate_rejects_letter_width(tmp_path: Path) -> None:
    path = tmp_path / "wide.tif"
    Image.new("1", (2000, 1100), 1).save(path, compression="group4", dpi=(204, 98))

    with pytest.raises(DocumentError) as caught:
        validate_fax_tiff(path)

    assert caught.value.code == "not_class_f"
    assert "2000 pixels wide" in caught.value.message
    assert "page 1" in caught.value.message


def test_validate_rejects_200_dpi(tmp_path: Path) -> None:
    path = tmp_path / "square.tif"
    draw_page(1, "fine").save(path, compression="group4", dpi=(200, 200))

    with pytest.raises(DocumentError) as caught:
        validate_fax_tiff(path)

    assert caught.value.code == "not_class_f"
    assert "200x200 dpi" in caught.value.message


def test_validate_rejects_second_bad_page(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tif"
    good = draw_page(1, "standard")
    narrow = Image.new("1", (1216, 1143), 1)
    good.save(path, save_all=True, append_images=[narrow], compression="group4",
              dpi=(204, 98))

    with pytest.raises(DocumentError) as caught:
        validate_fax_tiff(path)

    assert "page 2 is 1216 pixels wide" in caught.value.message


def test_validate_rejects_uncompressed(tmp_path: Path) -> None:
    path = tmp_path / "raw.tif"
    draw_page(1, "standard").save(path, dpi=(204, 98))

    with pytest.raises(DocumentError) as caught:
        validate_fax_tiff(path)

    assert caught.value.code == "not_class_f"
    assert "raw compression" in caught.value.message


def test_validate_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        validate_fax_tiff(tmp_path / "absent.tif")

    assert caught.value.code == "not_found"


def test_validate_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.tif"
    path.write_text("not a TIFF at all")

    with pytest.raises(DocumentError) as caught:
        validate_fax_tiff(path)

    assert caught.value.code == "corrupt"


def test_validate_png_is_not_class_f(tmp_path: Path) -> None:
    path = tmp_path / "page.png"
    draw_page(1, "standard").save(path)

    with pytest.raises(DocumentError) as caught:
        validate_fax_tiff(path)

    assert caught.value.code == "not_class_f"


def test_read_pages_matches_image(tmp_path: Path) -> None:
    path = make_fax_tiff(tmp_path / "two.tif", 2, "standard")

    pages = read_fax_pages(path)

    assert len(pages) == 2
    for number, page in enumerate(pages, start=1):
        expected = draw_page(number, "standard").tobytes()
        assert page.width == 1728
        assert page.height == 1143
        assert page.y_dpi == pytest.approx(98)
        assert b"".join(page.rows) == expected


def _page(rows: list[bytes]) -> FaxPage:
    return FaxPage(width=16, x_dpi=204, y_dpi=98, compression="group4", rows=rows)


def test_row_differences_skip_header() -> None:
    sent = _page([b"\xff\xff", b"\x00\xff", b"\xf0\x0f"])
    received = _page([b"\x00\x00", b"\x00\x00", b"\xff\xff", b"\x00\xff", b"\xf0\x0e"])

    assert count_row_differences(sent, received) == 1


def test_row_differences_shorter_received() -> None:
    sent = _page([b"\xff\xff", b"\x00\xff"])

    with pytest.raises(ValueError, match="fewer than the 2 sent"):
        count_row_differences(sent, _page([b"\xff\xff"]))
