"""Google Drive's confirmation step for large files: the page that stands between a link and the file.

For files too large to scan for viruses, ``https://drive.google.com/uc?export=download&id=ID``
answers with an HTML page instead of the file. The page holds a form (``action`` plus hidden
inputs ``id``, ``export``, ``confirm``, ``uuid``) or, on older pages, a link with a
``confirm=`` token, or the token is set as a ``download_warning`` cookie; following it yields
the file itself (with ``Range`` support, so downloads resume). Nothing but that URL is taken
from the page.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

__all__ = ["google_drive_url", "confirmation_url", "is_html"]

_PAGE_LIMIT = 1 << 20


def google_drive_url(file_id: str) -> str:
    """The direct-download URL of a Google Drive file id."""
    return f"https://drive.google.com/uc?{urlencode({'export': 'download', 'id': file_id})}"


def is_html(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` header announces a web page (never a checkpoint)."""
    return (content_type or "").split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")


class _ConfirmPage(HTMLParser):
    """Collects the download form (action + inputs) and links carrying a ``confirm`` token."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, list[tuple[str, str]]]] = []
        self.links: list[str] = []
        self._form: tuple[str, list[tuple[str, str]]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = (a.get("action", ""), [])
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name") and a.get("type", "text") == "hidden":
            self._form[1].append((a["name"], a.get("value", "")))
        elif tag == "a" and "confirm=" in a.get("href", ""):
            self.links.append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def confirmation_url(page: bytes, url: str, cookies: list[str] | None = None) -> str | None:
    """The URL that confirms the download of ``url``, read from Google Drive's warning page (or None)."""
    parser = _ConfirmPage()
    try:
        parser.feed(page[:_PAGE_LIMIT].decode("utf-8", "replace"))
    except Exception:  # a page we cannot read has no confirmation in it
        return None
    for action, inputs in parser.forms:
        if any(name == "confirm" for name, _ in inputs):
            target = urljoin(url, action or url)
            return urlunsplit((*urlsplit(target)[:3], urlencode(inputs), ""))
    if parser.links:
        return urljoin(url, parser.links[0])
    for cookie in cookies or []:
        name, _, rest = cookie.partition("=")
        if name.strip().startswith("download_warning"):
            return _with_query(url, {"confirm": rest.split(";")[0].strip()})
    return None
