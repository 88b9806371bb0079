"""Render HTML mail bodies as plain text, keeping paragraphs, lists and tables readable."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK_TAGS = frozenset(
    {
        "p", "div", "section", "article", "header", "footer", "blockquote", "pre",
        "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "dt", "dd",
        "table", "tr", "form", "fieldset", "address", "hr", "center",
    }
)  # fmt: skip
_SKIPPED_TAGS = frozenset({"head", "script", "style", "title", "template", "noscript", "svg"})
_SPACES = re.compile(r"[ \t\r\n\f]+")


def html_to_text(html: str) -> str:
    """Return the readable text of an HTML document."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.text()


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0
        self._list_stack: list[list[int]] = []  # per open list: [is_ordered, next_number]
        self._cells_in_row = 0
        self._link: str | None = None
        self._link_text_start = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
            return
        if tag in _BLOCK_TAGS:
            self._break(blank=tag in ("p", "h1", "h2", "h3", "table", "blockquote", "pre"))
        if tag == "pre":
            self._pre_depth += 1
        elif tag == "br":
            self._parts.append("\n")
        elif tag in ("ul", "ol"):
            self._list_stack.append([tag == "ol", 1])
        elif tag == "li":
            self._break()
            self._parts.append(self._bullet())
        elif tag == "tr":
            self._cells_in_row = 0
        elif tag in ("td", "th"):
            if self._cells_in_row:
                self._parts.append("  |  ")
            self._cells_in_row += 1
        elif tag == "img" and attributes.get("alt"):
            self._parts.append(f"[{attributes['alt']}]")
        elif tag == "a":
            self._link = attributes.get("href")
            self._link_text_start = len(self._parts)
        elif tag == "hr":
            self._parts.append("-" * 40 + "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        elif tag in ("ul", "ol") and self._list_stack:
            self._list_stack.pop()
        elif tag == "a":
            self._close_link()
        if tag in _BLOCK_TAGS:
            self._break(blank=tag in ("p", "h1", "h2", "h3", "table", "blockquote", "pre"))

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            self._parts.append(data)
        else:
            self._parts.append(_SPACES.sub(" ", data))

    def text(self) -> str:
        lines = [_clean_line(line) for line in "".join(self._parts).split("\n")]
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"

    def _break(self, blank: bool = False) -> None:
        self._parts.append("\n\n" if blank else "\n")

    def _bullet(self) -> str:
        if not self._list_stack:
            return "- "
        ordered, number = self._list_stack[-1]
        indent = "  " * (len(self._list_stack) - 1)
        if ordered:
            self._list_stack[-1][1] += 1
            return f"{indent}{number}. "
        return f"{indent}- "

    def _close_link(self) -> None:
        href, self._link = self._link, None
        if not href or not href.startswith(("http://", "https://", "mailto:")):
            return
        shown = "".join(self._parts[self._link_text_start :]).strip()
        target = href.removeprefix("mailto:")
        if shown and target not in shown:
            self._parts.append(f" <{target}>")


def _clean_line(line: str) -> str:
    # Collapsed source whitespace leaves one space at the start of a line;
    # deeper indentation comes from lists and <pre> and is kept.
    line = line.rstrip()
    if line.startswith(" ") and not line.startswith("  "):
        return line[1:]
    return line
