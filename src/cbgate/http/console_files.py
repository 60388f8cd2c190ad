"""`/console`: the web console's static files, shipped in the package and read once at startup."""
from __future__ import annotations

import hashlib
from pathlib import Path

from cbgate.errors import InvalidPath, MethodNotAllowed
from cbgate.http.exchange import Exchange

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
TYPES = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
         ".css": b"text/css; charset=utf-8", ".svg": b"image/svg+xml", ".json": b"application/json"}
# Everything comes from this origin: no CDN, no inline script, no framing by other sites.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]


class ConsoleFiles:
    def __init__(self, root: Path = CONSOLE_DIR):
        self.files: dict[str, tuple[bytes, bytes, bytes]] = {}  # name -> (body, content type, etag)
        for path in sorted(root.rglob("*")) if root.is_dir() else ():
            if path.is_file() and path.suffix in TYPES:
                body = path.read_bytes()
                etag = b'"' + hashlib.sha256(body).hexdigest()[:16].encode() + b'"'
                self.files[path.relative_to(root).as_posix()] = (body, TYPES[path.suffix], etag)

    async def handle(self, ex: Exchange, rest: list[str]) -> None:
        if ex.scope["method"] not in ("GET", "HEAD"):
            raise MethodNotAllowed(ex.scope["method"], ("GET", "HEAD"))
        name = "/".join(p for p in rest if p) or "index.html"
        found = self.files.get(name)
        if found is None:
            raise InvalidPath(f"no such path: {ex.scope['path']}")
        body, content_type, etag = found
        headers = [(b"content-type", content_type), (b"etag", etag), *SECURITY_HEADERS]
        if ex.header(b"if-none-match") == etag.decode():
            return await ex.reply(304, b"", headers)
        await ex.reply(200, b"" if ex.scope["method"] == "HEAD" else body, headers)
