"""Header-level PDF checks with pypdf, safe to run in the service process.

pypdf is pure Python, so a hostile file can at worst raise an exception here,
not crash the process the way a bug in a C parser could.
"""

from __future__ import annotations

import io
import logging

from faxgate.errors import DocumentError

from .detect import PASSWORD_MESSAGE
from .model import RenderLimits

logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf logs every repair it makes


def check_pdf_bytes(data: bytes, limits: RenderLimits | None) -> None:
    """Raise DocumentError if the PDF needs a password or has too many pages.

    A PDF that pypdf cannot parse passes: pdfium may still repair it when the
    document is rendered.
    """
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError:
                return  # an encryption that needs a missing crypto library: let pdfium decide
            if opened == PasswordType.NOT_DECRYPTED:
                raise DocumentError(PASSWORD_MESSAGE, code="password_protected")
        if limits is not None and len(reader.pages) > limits.max_pages:
            raise DocumentError(
                f"the PDF has {len(reader.pages)} pages, more than the limit of {limits.max_pages}",
                code="too_many_pages",
            )
    except DocumentError:
        raise
    except Exception:  # pypdf raises many kinds of errors on broken files
        return
