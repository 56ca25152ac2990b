"""Imagery where it lives: scenes read over HTTP with range requests from a loopback server
the test starts and stops (127.0.0.1 only), compared with the same scene read locally."""

import http.server
import re
import threading
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.config import TileOptions
from geoseg.io import copy_as_cog, gdal_path, is_remote
from geoseg.pipeline import Outputs, expand_scenes, run_predict


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with single byte ranges (as object stores do); ``/flaky/`` paths answer
    503 to their first two requests; counts the bytes it sends."""

    failures: dict = {}
    sent = 0

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
        outputfile.write(data)


@pytest.fixture
def server(tmp_path, synth_task):
    copy_as_cog(synth_task["scene"], tmp_path / "scene.tif")
    handler = lambda *a, **k: RangeHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.failures, RangeHandler.sent = {}, 0
    yield f"http://127.0.0.1:{httpd.server_address[1]}", tmp_path
    httpd.shutdown()
    httpd.server_close()


def test_urls_are_gdal_paths_never_local_files():
    assert gdal_path("https://h/x.tif") == "/vsicurl/https://h/x.tif"
    assert gdal_path("s3://bucket/k/x.tif") == "/vsis3/bucket/k/x.tif"
    assert gdal_path("gs://b/x.tif") == "/vsigs/b/x.tif" and gdal_path("az://c/x.tif") == "/vsiaz/c/x.tif"
    assert gdal_path("zip://data/a.zip!img/x.tif") == "/vsizip/data/a.zip/img/x.tif"
    assert gdal_path("/vsicurl/https://h/x.tif") == "/vsicurl/https://h/x.tif" and not is_remote("x.tif")
    assert expand_scenes(["https://h/tiles/*.tif"]) == ["https://h/tiles/*.tif"]  # a URL is never globbed


def test_a_remote_cog_predicts_what_the_local_copy_does(server, tiny_model, tmp_path):
    url, folder = server
    opts = TileOptions(tile_size=64, precision="fp32")
    local = run_predict(folder / "scene.tif", tiny_model, Outputs(tmp_path / "local.gpkg", preview=False), opts)
    RangeHandler.sent = 0
    remote = run_predict(f"{url}/scene.tif", tiny_model, Outputs(tmp_path / "remote.gpkg", preview=False), opts)
    a, b = (gpd.read_file(r.out, layer="roofs") for r in (local, remote))
    assert len(a) == len(b) > 0 and a.geometry.geom_equals(b.geometry).all()
    assert RangeHandler.sent <= 1.2 * (folder / "scene.tif").stat().st_size  # no more than the file, about
    via_vsi = run_predict(f"/vsicurl/{url}/scene.tif", tiny_model, Outputs(tmp_path / "vsi.gpkg", preview=False),
                          opts)
    assert via_vsi.count == local.count


def test_transient_errors_are_retried(server, tiny_model, tmp_path):
    url, _ = server
    r = run_predict(f"{url}/flaky/scene.tif", tiny_model, Outputs(tmp_path / "r.gpkg", preview=False),
                    TileOptions(tile_size=64))
    assert r.count >= 0 and RangeHandler.failures["/flaky/scene.tif"] >= 3


def test_a_missing_remote_scene_is_one_line(server, tiny_model, tmp_path):
    url, _ = server
    r = CliRunner().invoke(main, ["predict", f"{url}/nope.tif", "--model", str(tiny_model), "--out",
                                  str(tmp_path / "r.gpkg"), "--quiet"])
    assert r.exit_code != 0
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "not found on the server (HTTP 404)" in lines[0], r.output
    assert not (tmp_path / "r.gpkg").exists()
