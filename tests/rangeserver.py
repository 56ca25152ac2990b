"""A loopback HTTP server that honours byte ranges, as object stores do: for the tests and
benchmarks of remote reading. It binds 127.0.0.1 only and stops when its block ends."""

import contextlib
import http.server
import re
import threading
from pathlib import Path


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with single byte ranges (as object stores do); ``/flaky/`` paths answer
    503 to their first two requests, ``/broken/`` paths 500 to every request after the
    first ``broken_after`` (the header reads succeed, the pixel reads fail), ``/trickle/``
    paths send a few bytes a second (for at most ``TRICKLE_SECONDS``); counts the bytes it
    sends."""

    failures: dict = {}
    sent = 0
    broken_after = 2
    TRICKLE_SECONDS = 20

    def log_message(self, *args):
        pass

    def send_head(self):
        if self.path.startswith("/flaky/"):
            n = RangeHandler.failures.get(self.path, 0)
            RangeHandler.failures[self.path] = n + 1
            if n < 2:
                self.send_error(503, "try again")
                return None
            self.path = self.path[len("/flaky"):]
        self._trickle = self.path.startswith("/trickle/")
        if self._trickle:
            self.path = self.path[len("/trickle"):]
        if self.path.startswith("/broken/"):
            n = RangeHandler.failures.get(self.path, 0)
            RangeHandler.failures[self.path] = n + 1
            if n >= RangeHandler.broken_after:
                self.send_error(500, "internal server error")
                return None
            self.path = self.path[len("/broken"):]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "not found")
            return None
        size = path.stat().st_size
        m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        start, end = (int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)) if m else (0, size - 1)
        fh = open(path, "rb")
        fh.seek(start)
        self.send_response(206 if m else 200)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if m:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        self._left = end - start + 1
        return fh

    def copyfile(self, source, outputfile):
        data = source.read(self._left)
        RangeHandler.sent += len(data)
        if not self._trickle:
            outputfile.write(data)
            return
        import time

        stop = time.monotonic() + RangeHandler.TRICKLE_SECONDS  # bounded: the server gives up by itself
        for i in range(0, len(data), 16):
            if time.monotonic() > stop:
                return
            try:
                outputfile.write(data[i:i + 16])
                outputfile.flush()
            except OSError:  # the client hung up
                return
            time.sleep(0.5)


@contextlib.contextmanager
def serve(folder):
    """``http://127.0.0.1:PORT`` serving ``folder`` for the block's life; counts reset."""
    handler = lambda *a, **k: RangeHandler(*a, directory=str(folder), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.failures, RangeHandler.sent = {}, 0
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
