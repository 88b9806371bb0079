"""Length limits of the T.30 identity and page header fields, as spandsp 0.0.6 enforces them.

Kept apart from the spandsp binding so that code which only checks values
does not load the library.
"""

from typing import Final

MAX_IDENT_LENGTH: Final = 20
"""T30_MAX_IDENT_LEN in t30.h: the maximum length of a TSI or CSI."""

MAX_PAGE_HEADER_LENGTH: Final = 50
"""T30_MAX_PAGE_HEADER_INFO in t30.h: the maximum length of the page header text."""
