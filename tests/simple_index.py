"""A package index on loopback, for the connected side's download without the network.

It serves a folder of wheels through the JSON simple API (PEP 691) with each file's upload time
(PEP 700), so uv's `--exclude-newer` and pip's download meet what PyPI would answer.
"""

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@contextmanager
def serve_index(folder: Path, uploaded: dict[str, datetime]) -> Iterator[str]:
    """Serve the wheels in `folder` at the returned index URL; a wheel's upload time is
    `uploaded[filename]`, else 2020-01-01."""
    default = datetime.fromisoformat("2020-01-01T00:00:00+00:00")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if len(parts) == 2 and parts[0] == "files" and (folder / parts[1]).is_file():
                self._send((folder / parts[1]).read_bytes(), "application/octet-stream")
                return
            if len(parts) != 2 or parts[0] != "simple":
                self.send_error(404)
                return
            project = canonicalize_name(parts[1])
            files = []
            for path in sorted(folder.glob("*.whl")):
                if parse_wheel_filename(path.name)[0] != project:
                    continue
                when = uploaded.get(path.name, default)
                files.append(
                    {
                        "filename": path.name,
                        "url": f"{base}/files/{path.name}",
                        "hashes": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
                        "upload-time": when.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                    }
                )
            if not files:
                self.send_error(404)
                return
            page = {"meta": {"api-version": "1.1"}, "name": project, "files": files}
            self._send(json.dumps(page).encode(), JSON_TYPE)

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
