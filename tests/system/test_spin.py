"""The Spin app under the real Spin CLI (docs/spin.md): `spin build` in a fresh clone, `spin up` on
local files and on the GCS emulator, and `spin registry push` to a local OCI registry followed by
`spin up --from` that reference — the artifact SpinKube and Akamai Functions deploy. Each runs the
example job and must write what the native host writes.

The Spin CLI is in no package registry: scripts/test passes one in SPIN (from PATH or the
project's tool folder); Debian's docker-registry is the local registry. Without them the tests
skip, saying why.
"""

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, Server, free_port
from gcs import wait_for_port
from job import assert_same_objects, job_requests, run_job
from test_hosts import HostServer

SPIN = os.environ.get("SPIN")


def spin() -> str:
    if not SPIN:
        pytest.skip("SPIN is not set: the Spin CLI (https://spinframework.dev/install); scripts/test sets SPIN "
                    "from PATH")
    if not Path(SPIN).is_file():
        pytest.skip(f"SPIN={SPIN} is not a file")
    return SPIN


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone of this repository's committed state, built by `spin build`."""
    spin()
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout: nothing to clone")
    app = tmp_path_factory.mktemp("spin") / "emwrite"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(app)], check=True)
    # The manifest's build writes to target/spin. A copy of this checkout's is a cargo cache only
    # (the clone's own sources are compiled again), and spares compiling every dependency anew.
    if (ROOT / "target" / "spin").is_dir():
        shutil.copytree(ROOT / "target" / "spin", app / "target" / "spin", symlinks=True)
    build = subprocess.run([spin(), "build"], cwd=app, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    source = tomllib.loads((app / "spin.toml").read_text())["component"]["emwrite"]["source"]
    assert (app / source).is_file(), build.stdout + build.stderr
    return app


def spin_up(cwd: Path, *args: str) -> HostServer:
    """`spin up ARGS` in `cwd`, on a loopback port."""
    port = free_port()
    return HostServer([spin(), "up", "--listen", f"127.0.0.1:{port}", *args], port, {},
                      cwd / f"spin-up-{port}.log", cwd=cwd)


def gcs_variables(emulator) -> list[str]:
    return ["--variable", "store=gcs", "--variable", f"storage_emulator_url={emulator.url}"]


def local_outputs(data: Path, stack: dict) -> dict[str, bytes]:
    """Every file the job wrote under `data` (the raw slices aside), by path."""
    out = {}
    for bucket in (stack["dest"], stack["dest-tmp"]):
        for path in sorted((data / bucket).rglob("*")):
            relative = path.relative_to(data)
            if path.is_file() and relative.parts[1] != "raw":
                out[str(relative)] = path.read_bytes()
    return out


def copy_inputs(example_stack, data: Path):
    source, stack = example_stack
    shutil.copytree(source / stack["dest"] / "raw", data / stack["dest"] / "raw")
    (data / stack["dest-tmp"]).mkdir()


def test_spin_up_on_local_files_writes_what_the_native_host_writes(clone, emwrite, example_stack, tmp_path):
    stack = example_stack[1]
    reference_data = tmp_path / "native"
    copy_inputs(example_stack, reference_data)
    native = Server(emwrite, reference_data)
    try:
        for endpoint, body in job_requests(stack, stack["dest"]):
            assert native.post(endpoint, body) == (200, "success"), (endpoint, body)
    finally:
        native.stop()

    # spin.toml mounts the clone's ./data at /data; --direct-mounts --allow-transient-write let
    # the component write into it. Spin 4.0.2 resolves a direct mount against the working
    # directory, not the manifest's, so it runs in the app's folder, as docs/spin.md says.
    data = clone / "data"
    copy_inputs(example_stack, data)
    server = spin_up(clone, "--direct-mounts", "--allow-transient-write")
    try:
        assert server.get("/healthz")[0] == 200
        for endpoint, body in job_requests(stack, stack["dest"]):
            assert server.post(endpoint, body) == (200, "success"), (endpoint, body)
    finally:
        server.stop()
    ours, reference = local_outputs(data, stack), local_outputs(reference_data, stack)
    assert sorted(ours) == sorted(reference)
    assert [name for name in reference if ours[name] != reference[name]] == []
    shutil.rmtree(data / stack["dest"])
    shutil.rmtree(data / stack["dest-tmp"])


def test_spin_up_on_the_emulator_writes_what_the_native_host_writes(clone, emulator, example_stack,
                                                                    native_objects, tmp_path):
    server = spin_up(clone, *gcs_variables(emulator))
    try:
        objects = run_job(server, emulator, example_stack, "spin-up")
    finally:
        server.stop()
    assert_same_objects(objects, native_objects)


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry on a loopback port, storing in `tmp_path`."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (Debian: apt-get install docker-registry); scripts/test "
                    "installs it")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {tmp_path / 'registry'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    with open(tmp_path / "registry.log", "w") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process)
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait()


def test_spin_up_from_a_registry_writes_what_the_native_host_writes(clone, registry, emulator, example_stack,
                                                                    native_objects, tmp_path):
    reference = f"{registry}/emwrite:test"
    push = subprocess.run([spin(), "registry", "push", "--insecure", "-f", str(clone / "spin.toml"), reference],
                          capture_output=True, text=True)
    assert push.returncode == 0, push.stdout + push.stderr
    # From the registry alone, with a cache and state of its own: nothing of the clone is read.
    server = spin_up(tmp_path, "--from", reference, "--insecure", "--cache-dir", str(tmp_path / "cache"),
                     "--state-dir", str(tmp_path / "state"), *gcs_variables(emulator))
    try:
        objects = run_job(server, emulator, example_stack, "spin-registry")
    finally:
        server.stop()
    assert_same_objects(objects, native_objects)
