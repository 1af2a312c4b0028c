"""Fixtures for the oracle tests (tests/oracles) and the system tests (tests/system): the built
emwrite binaries, scratch data dirs, a live server.

The test command (scripts/test) builds `target/release/emwrite` and the `make_stack` example
before running pytest; these tests never build anything themselves.
"""

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# tensorstore reads these when it first opens a gcs kvstore, and the test modules import it
# after this file: fix the emulator's port now and point tensorstore at it.
EMULATOR_PORT = free_port()
os.environ["TENSORSTORE_GCS_HTTP_URL"] = f"http://127.0.0.1:{EMULATOR_PORT}"
os.environ["GOOGLE_AUTH_TOKEN_FOR_TESTING"] = "dummy"
EMWRITE = ROOT / "target" / "release" / "emwrite"
MAKE_STACK = ROOT / "target" / "release" / "examples" / "make_stack"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run the README's test command (scripts/test), which builds it")
    return path


@pytest.fixture(scope="session")
def emwrite() -> Path:
    return _require(EMWRITE)


@pytest.fixture(scope="session")
def make_stack() -> Path:
    return _require(MAKE_STACK)


def run_emwrite(emwrite: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(emwrite), *args], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(
            f"emwrite {' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def with_(base: dict, **changes) -> dict:
    """A request `base` with fields changed (`dest_tmp` names `dest-tmp`); None removes a field."""
    out = dict(base)
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def generate_stack(make_stack: Path, data_dir: Path, **options) -> dict:
    args = [str(make_stack), "--data-dir", str(data_dir)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    subprocess.run(args, check=True, capture_output=True)
    return json.loads((data_dir / "stack.json").read_text())


class Server:
    """`emwrite serve` on a loopback port, stopped when the test session ends."""

    def __init__(self, emwrite: Path, data_dir: Path, *extra_args: str, env: dict | None = None):
        self.port = free_port()
        self.data_dir = data_dir
        self.log = open(data_dir.parent / f"serve-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [str(emwrite), "serve", "--addr", "127.0.0.1", "--port", str(self.port), "--data-dir", str(data_dir),
             *extra_args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"emwrite serve exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)

    def post(self, endpoint: str, body, accept: str | None = None, headers: dict | None = None) -> tuple[int, str]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{endpoint}", data=data, method="POST",
            headers={"Content-Type": "application/json", **({"Accept": accept} if accept else {}),
                     **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}") as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def stop(self):
        self.process.terminate()
        self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def server(emwrite, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("serve") / "data"
    data_dir.mkdir()
    s = Server(emwrite, data_dir)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    from gcs import Emulator
    e = Emulator(EMULATOR_PORT, tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log")
    yield e
    e.stop()


@pytest.fixture(scope="session")
def example_stack(make_stack, tmp_path_factory):
    """The job's stack: (data dir, stack). 1200 × 300 after the margin: two blocks in x, so
    ngshard runs twice; minz > 0."""
    data_dir = tmp_path_factory.mktemp("example-stack")
    return data_dir, generate_stack(make_stack, data_dir, width=1100, height=200, margin=100, slices=4, minz=2)


@pytest.fixture(scope="session")
def native_objects(emwrite, emulator, example_stack, tmp_path_factory):
    """The reference: what the native host, `emwrite serve --store gcs`, writes for the job."""
    from job import gcs_env, run_job
    workdir = tmp_path_factory.mktemp("native")
    server = Server(emwrite, workdir, "--store", "gcs", env=gcs_env(emulator))
    try:
        objects = run_job(server, emulator, example_stack, "native")
    finally:
        server.stop()
    # The job wrote what it should: aligned PNGs, tile packs, both infos, shards of both pyramids.
    names = sorted(objects)
    assert sum(n.startswith("dest:align/") for n in names) == len(example_stack[1]["slices"])
    assert sum(n.startswith("tmp:") for n in names) == len(example_stack[1]["slices"])
    assert {"dest:neuroglancer/jpeg/info", "dest:neuroglancer/raw/info"} <= set(names)
    assert any(re.fullmatch(r"dest:neuroglancer/raw/[^/]+/[0-9a-f]+\.shard", n) for n in names)
    return objects
