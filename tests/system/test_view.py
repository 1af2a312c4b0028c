"""`emwrite view`: the example volume served on loopback, read over HTTP as Neuroglancer reads it,
and rendered by the real viewer in headless Chromium.

The viewer is PyPI's `neuroglancer` package: its built client (`neuroglancer/static/client`) served
by its own local server, which also hands the browser the state of the link `emwrite view`
printed and returns the canvas once every visible chunk has loaded. The browser is Debian's
Chromium (scripts/test installs it), rendering WebGL with SwiftShader. The screenshot is compared
with the aligned slice it should show; a passing one is saved as target/neuroglancer.png, and with
EMWRITE_UPDATE_SCREENSHOT=1 also as docs/neuroglancer.png, the README's picture (a test run leaves
the tracked tree as it was).
"""

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, generate_stack, run_emwrite

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "target" / "neuroglancer.png"
README_SCREENSHOT = ROOT / "docs" / "neuroglancer.png"
# The canvas: the README's picture, and a single cross-section panel (the link's "xy" layout).
SIZE = (1024, 768)
# Generous bounds on waiting for the browser: software WebGL on two shared cores is slow.
SCREENSHOT_WAIT_SECONDS = 600


class View:
    """`emwrite view` on a free loopback port; the link it printed."""

    def __init__(self, emwrite: Path, location: str, data_dir: Path):
        self.log = open(data_dir.parent / "view.log", "w")
        self.process = subprocess.Popen(
            [str(emwrite), "view", location, "--data-dir", str(data_dir), "--port", "0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        # Its first two lines: `listening on http://127.0.0.1:PORT`, then the link.
        listening = self.process.stdout.readline().strip()
        assert listening.startswith("listening on http://127.0.0.1:"), f"emwrite view printed {listening!r}"
        self.base = listening.removeprefix("listening on ")
        self.link = self.process.stdout.readline().strip()

    def request(self, path: str, method: str = "GET", headers: dict | None = None):
        request = urllib.request.Request(self.base + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def stop(self):
        self.process.terminate()
        self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def example(emwrite, make_stack, tmp_path_factory):
    """The example stack of scripts/demo, converted by `emwrite pipeline`."""
    data = tmp_path_factory.mktemp("view") / "data"
    stack = generate_stack(make_stack, data)
    result = run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data))
    return data, stack, result.stdout


@pytest.fixture(scope="module")
def view(emwrite, example):
    data, stack, _ = example
    v = View(emwrite, stack["dest"], data)
    yield v
    v.stop()


def link_state(link: str) -> dict:
    viewer, fragment = link.split("#!", 1)
    assert viewer == "https://neuroglancer-demo.appspot.com/"
    return json.loads(urllib.parse.unquote(fragment))


def test_pipeline_prints_the_view_command_and_its_link(example):
    data, stack, stdout = example
    assert f"emwrite view {stack['dest']} --data-dir {data}" in stdout
    link = stdout.strip().splitlines()[-1]
    state = link_state(link)
    assert state["layers"][0]["source"] == "precomputed://http://127.0.0.1:8081/neuroglancer/jpeg"


def test_view_serves_the_volume_with_ranges_and_cors(view, example):
    data, stack, _ = example
    volume = data / stack["dest"] / "neuroglancer" / "jpeg"
    state = link_state(view.link)
    assert state["layers"][0]["source"] == f"precomputed://{view.base}/neuroglancer/jpeg"
    info = json.loads((volume / "info").read_text())
    width, height = stack["bbox"]
    zs = [s["z"] for s in stack["slices"]]
    assert state["position"] == [width // 2 + 0.5, height // 2 + 0.5, min(zs) + len(zs) // 2 + 0.5]
    assert state["dimensions"]["x"] == [info["scales"][0]["resolution"][0] * 1e-9, "m"]

    status, headers, body = view.request("/neuroglancer/jpeg/info")
    assert status == 200 and json.loads(body) == info
    assert headers["Access-Control-Allow-Origin"] == "*"

    shard = next((volume / info["scales"][0]["key"]).glob("*.shard"))
    whole = shard.read_bytes()
    path = f"/neuroglancer/jpeg/{info['scales'][0]['key']}/{shard.name}"
    status, headers, body = view.request(path, headers={"Range": "bytes=16-1039"})
    assert status == 206 and body == whole[16:1040]
    assert headers["Content-Range"] == f"bytes 16-1039/{len(whole)}"
    assert "Content-Range" in headers["Access-Control-Expose-Headers"]
    status, _, body = view.request(path, headers={"Range": "bytes=-100"})
    assert status == 206 and body == whole[-100:]
    status, headers, _ = view.request(path, headers={"Range": f"bytes={len(whole)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(whole)}"

    status, headers, _ = view.request(path, method="OPTIONS", headers={
        "Origin": "https://neuroglancer-demo.appspot.com", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range", "Access-Control-Request-Private-Network": "true"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Headers"] == "range"
    assert headers["Access-Control-Allow-Private-Network"] == "true"

    # Read-only, nothing outside the volume's folder.
    assert view.request("/neuroglancer/jpeg/info", method="PUT")[0] == 405
    assert view.request("/neuroglancer/jpeg/info", method="DELETE")[0] == 405
    (data / "outside").write_text("secret")
    (data / stack["dest"] / "link-out").symlink_to(data / "outside")
    assert view.request("/link-out")[0] == 403
    assert view.request("/../outside")[0] == 404
    assert view.request("/%2e%2e/outside")[0] == 404
    assert view.request("/no/such/shard")[0] == 404


def test_view_of_gcs_prints_the_link_and_serves_nothing(emwrite, tmp_path):
    result = run_emwrite(emwrite, "view", "gs://lab-em/run1", "--data-dir", str(tmp_path))
    state = link_state(result.stdout.strip())
    assert state["layers"][0]["source"] == "precomputed://gs://lab-em/run1/neuroglancer/jpeg"


def test_view_of_a_missing_volume_names_it(emwrite, tmp_path):
    result = run_emwrite(emwrite, "view", "nolab", "--data-dir", str(tmp_path), check=False)
    assert result.returncode != 0 and "nolab" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_emwrite(emwrite, "view", "empty", "--data-dir", str(tmp_path), check=False)
    assert result.returncode != 0 and "neuroglancer/jpeg/info" in result.stderr


def screenshot(link: str, log: Path) -> tuple[np.ndarray, bytes]:
    """The viewer's canvas (RGBA pixels and PNG) showing `link`'s state, once every visible chunk has
    loaded."""
    import neuroglancer

    neuroglancer.set_server_bind_address("127.0.0.1", 0)
    viewer = neuroglancer.Viewer()
    viewer.set_state(neuroglancer.parse_url(link))
    with viewer.config_state.txn() as config:
        config.show_ui_controls = False
        config.show_panel_borders = False
        config.viewer_size = list(SIZE)
    profile = log.parent / "chromium-profile"
    browser = subprocess.Popen(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         f"--window-size={SIZE[0]},{SIZE[1]}", viewer.get_viewer_url()],
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        done = threading.Event()
        reply = []
        viewer.async_screenshot(lambda s: (reply.append(s), done.set()))
        waited = 0
        while not done.wait(5):
            waited += 5
            assert browser.poll() is None, f"chromium exited with {browser.returncode}; see {log}"
            assert waited < SCREENSHOT_WAIT_SECONDS, f"no screenshot after {waited} s; see {log}"
    finally:
        browser.terminate()
        browser.wait()
        neuroglancer.stop()
        shutil.rmtree(profile, ignore_errors=True)
    png = reply[0].screenshot.image
    return np.asarray(Image.open(BytesIO(png)).convert("RGBA")), png


def expected_view(state: dict, aligned: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The aligned slice as the state frames it on a canvas of `shape` (rows, columns): voxel
    (x, y) at canvas pixel centre + (x - position) / crossSectionScale, nearest voxel; and which
    canvas pixels fall inside the slice."""
    rows, cols = shape
    scale = state["crossSectionScale"]
    x = state["position"][0] + (np.arange(cols) + 0.5 - cols / 2) * scale
    y = state["position"][1] + (np.arange(rows) + 0.5 - rows / 2) * scale
    xi, yi = np.floor(x).astype(int), np.floor(y).astype(int)
    inside = ((yi >= 0) & (yi < aligned.shape[0]))[:, None] & ((xi >= 0) & (xi < aligned.shape[1]))[None, :]
    expected = aligned[np.clip(yi, 0, aligned.shape[0] - 1)][:, np.clip(xi, 0, aligned.shape[1] - 1)]
    return expected, inside


def assert_shows_the_slice(pixels: np.ndarray, state: dict, data: Path, stack: dict, source: str):
    """The screenshot shows the aligned slice at the state's z, framed as the state says: data,
    not an empty viewer (many grey levels where the slice is), following the slice's structure
    (the viewer may stretch contrast: a linear map keeps the correlation)."""
    grey = pixels[..., :3].astype(float).mean(axis=2)
    z = int(state["position"][2])
    img = next(s["img"] for s in stack["slices"] if s["z"] == z)
    aligned = np.asarray(Image.open(data / stack["dest"] / "align" / img).convert("L")).astype(float)
    expected, inside = expected_view(state, aligned, grey.shape)
    levels = len(np.unique(grey[inside].round()))
    assert levels > 64, f"{source}: only {levels} grey levels where the slice should be"
    correlation = np.corrcoef(grey[inside], expected[inside])[0, 1]
    assert correlation > 0.6, f"{source}: the screenshot does not follow the slice (r = {correlation:.2f})"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: scripts/test installs it")
def test_neuroglancer_shows_the_volume(view, example, tmp_path):
    data, stack, _ = example
    state = link_state(view.link)
    pixels, png = screenshot(view.link, tmp_path / "chromium.log")
    assert pixels.shape[:2] == (SIZE[1], SIZE[0])
    assert_shows_the_slice(pixels, state, data, stack, "precomputed")
    SCREENSHOT.write_bytes(png)
    if os.environ.get("EMWRITE_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.write_bytes(png)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: scripts/test installs it")
def test_neuroglancer_shows_the_ome_zarr_image_and_flat_voxels(emwrite, make_stack, tmp_path):
    """`emwrite view` prints a zarr3:// link after the precomputed one, and Neuroglancer renders
    both sources of a stack of 8×8×40 nm voxels (whose scales keep z until x and y pass it) as the
    aligned slice."""
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data, width=300, height=200, margin=40, slices=6, minz=2)
    run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data), "--format", "both",
                "--resolution", "8,8,40")
    view = View(emwrite, stack["dest"], data)
    try:
        zarr_link = view.process.stdout.readline().strip()
        assert link_state(view.link)["layers"][0]["source"].startswith("precomputed://")
        assert link_state(zarr_link)["layers"][0]["source"] == f"zarr3://{view.base}/ome-zarr/"
        shots = [(link_state(link), screenshot(link, tmp_path / f"chromium-{i}.log")[0])
                 for i, link in enumerate([view.link, zarr_link])]
    finally:
        view.stop()
    for source, (state, pixels) in zip(["precomputed", "zarr3"], shots):
        assert state["dimensions"]["z"] == [pytest.approx(40e-9), "m"], source
        assert_shows_the_slice(pixels, state, data, stack, source)
