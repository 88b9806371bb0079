"""The document pipeline: everything a user sends, turned into fax pages.

Inputs (PDF, TIFF, images, text, HTML, office documents) become one
multi-page G4 fax TIFF at standard or fine resolution plus a PDF of the same
pages, rendered in a pool of worker processes with time, memory and page limits.
"""

from faxgate.documents.detect import (
    DETECTED_CONTENT_TYPES,
    IMAGE_TYPES,
    OFFICE_TYPES,
    SUPPORTED_TYPES,
    detect_type,
    quick_check,
)
from faxgate.documents.header import (
    DEFAULT_HEADER_TEMPLATE,
    HEADER_FIELDS,
    format_header,
    validate_header_template,
)
from faxgate.documents.model import (
    FAX_WIDTH_PX,
    FAX_XDPI,
    RESOLUTION_YDPI,
    DocumentInput,
    HeaderInfo,
    RenderedDocument,
    RenderLimits,
    SourceInfo,
)
from faxgate.documents.renderer import DocumentRenderer

__all__ = [
    "DEFAULT_HEADER_TEMPLATE",
    "DETECTED_CONTENT_TYPES",
    "FAX_WIDTH_PX",
    "FAX_XDPI",
    "HEADER_FIELDS",
    "IMAGE_TYPES",
    "OFFICE_TYPES",
    "RESOLUTION_YDPI",
    "SUPPORTED_TYPES",
    "DocumentInput",
    "DocumentRenderer",
    "HeaderInfo",
    "RenderLimits",
    "RenderedDocument",
    "SourceInfo",
    "detect_type",
    "format_header",
    "quick_check",
    "validate_header_template",
]
