"""emwrite's GCS client under the retry conformance scenarios of Google's own client libraries.

Google's storage-testbench (the GCS emulator those libraries test against) injects the faults of
each scenario of `retry_tests.json` that names an object method emwrite sends (METHODS), for
requests carrying the scenario's `x-retry-test-id`, which a loopback proxy adds to every request
of emwrite's. Each case runs one alignedslice, which downloads its raw slice (objects.get), uploads
the aligned PNG in a resumable session and the tile pack as two hidden parts (objects.insert),
composes them (objects.compose) and deletes the parts (objects.delete). The case must end in
success with the fault-free objects, or in a clear failure that names the object; it leaves no
torn or hidden objects; and the testbench must report the scenario's faults as all met.

emwrite retries writes that the scenarios retry only under a precondition (scenario 3 expects no
retry without one): its writes are idempotent by construction (docs/design.md §6), so it succeeds
there, and the test says so.

The testbench and the scenarios are in no package registry: scripts/test passes the testbench's
folder in TESTBENCH, a Python it is installed in as TESTBENCH_PYTHON, and the scenarios' file in
RETRY_TESTS. Without them the tests skip, saying why.
"""

import json
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, Server, free_port, generate_stack
from gcs import RETRY_BASE_MS, Proxy, wait_for_port
from job import job_requests

TESTBENCH = os.environ.get("TESTBENCH")
TESTBENCH_PYTHON = os.environ.get("TESTBENCH_PYTHON", str(ROOT / ".venv-testbench" / "bin" / "python"))
RETRY_TESTS = os.environ.get("RETRY_TESTS")
# The JSON API methods emwrite's GCS client sends (src/storage/gcs): downloads and metadata reads,
# media and resumable uploads, compose, delete. It never lists.
METHODS = {"storage.objects.get", "storage.objects.insert", "storage.objects.compose", "storage.objects.delete"}
# Scenario 3 expects a client to give up on a write without a precondition; emwrite retries it.
RETRIES_WITHOUT_PRECONDITION = {3}
BUCKET = "conformance"
TMP_BUCKET = f"{BUCKET}-tmp"
# Hidden parts of a prefixed object (src/storage/gcs/upload.rs): `<dir>/.<name>.part-<hex>-…`.
HIDDEN_PART = ".part-"


def scenario_cases() -> list:
    if not RETRY_TESTS:
        return [pytest.param(None, None, None, None, marks=pytest.mark.skip(
            reason="RETRY_TESTS is not set: the GCS retry conformance scenarios (googleapis/conformance-tests "
                   "storage/v1/retry_tests.json); scripts/test sets it"))]
    cases = []
    for scenario in json.loads(Path(RETRY_TESTS).read_text())["retryTests"]:
        for method in sorted({m["name"] for m in scenario["methods"]} & METHODS):
            for index, case in enumerate(scenario["cases"]):
                cases.append(pytest.param(scenario["id"], scenario["expectSuccess"], method, case["instructions"],
                                          id=f"{scenario['id']}-{method.split('.')[-1]}-{index}"))
    return cases


class StorageTestbench:
    """storage-testbench on a loopback port, with its JSON API and its Retry Test API."""

    def __init__(self, log_path: Path):
        python = Path(TESTBENCH_PYTHON)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        # It starts gunicorn by name: its environment's bin/ goes first on PATH.
        env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}
        # In a process group of its own: testbench_run.py serves from gunicorn's children, and
        # the whole group is stopped.
        self.process = subprocess.Popen([str(python), str(Path(TESTBENCH) / "testbench_run.py"), "127.0.0.1",
                                         str(self.port), "1"], stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        wait_for_port(self.port, self.process)

    def call(self, method: str, path: str, body=None, content_type="application/json"):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request) as response:
            return response.read()

    def create_bucket(self, name: str):
        self.call("POST", "/storage/v1/b?project=test", {"name": name})

    def upload(self, bucket: str, name: str, data: bytes):
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        self.call("POST", f"/upload/storage/v1/b/{bucket}/o?{query}", data, "image/png")

    def names(self, bucket: str) -> list[str]:
        names, token = [], None
        while True:
            query = urllib.parse.urlencode({"pageToken": token} if token else {})
            page = json.loads(self.call("GET", f"/storage/v1/b/{bucket}/o?{query}"))
            names += [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                return sorted(names)

    def download(self, bucket: str, name: str) -> bytes:
        return self.call("GET", f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media")

    def delete(self, bucket: str, name: str):
        self.call("DELETE", f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}")

    def outputs(self) -> dict[str, bytes]:
        """Every object but the raw slices, by bucket and name."""
        return {f"{bucket}:{name}": self.download(bucket, name)
                for bucket in (BUCKET, TMP_BUCKET) for name in self.names(bucket) if not name.startswith("raw/")}

    def clear_outputs(self):
        for key in self.outputs():
            bucket, name = key.split(":", 1)
            self.delete(bucket, name)

    def stop(self):
        # gunicorn's master and worker stop on SIGTERM as the launcher does.
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait()
        self.log.close()


class RetryTestProxy(Proxy):
    """Adds the current retry test's id to every request it forwards."""

    def __init__(self, port: int, upstream_port: int):
        self.test_id = None
        self.lock = threading.Lock()
        super().__init__(port, upstream_port)

    def extra_headers(self) -> dict:
        with self.lock:
            return {"x-retry-test-id": self.test_id} if self.test_id else {}


@pytest.fixture(scope="module")
def bench(make_stack, emwrite, tmp_path_factory):
    if not TESTBENCH:
        pytest.skip("TESTBENCH is not set: Google's storage-testbench (github.com/googleapis/storage-testbench); "
                    "scripts/test sets it")
    if not Path(TESTBENCH_PYTHON).is_file():
        pytest.skip(f"TESTBENCH_PYTHON={TESTBENCH_PYTHON}: no Python with storage-testbench installed "
                    "(pip install TESTBENCH into a venv); scripts/test makes .venv-testbench")
    workdir = tmp_path_factory.mktemp("conformance")
    testbench = StorageTestbench(workdir / "testbench.log")
    proxy = RetryTestProxy(free_port(), testbench.port)
    server = Server(emwrite, workdir, "--store", "gcs",
                    env={"STORAGE_EMULATOR_HOST": proxy.url, "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS})
    try:
        testbench.create_bucket(BUCKET)
        testbench.create_bucket(TMP_BUCKET)
        # One slice of 1000 × 1000 (its outputs pass 256 KiB) and one of 4000 × 4000 (past the
        # 8 MiB of the scenarios' largest upload fault).
        requests = {}
        for size in (1000, 4000):
            stack_dir = workdir / f"stack-{size}"
            stack = generate_stack(make_stack, stack_dir, width=size - 100, height=size - 100, slices=1,
                                   minz=size)
            entry = stack["slices"][0]
            raw = (stack_dir / stack["dest"] / "raw" / entry["img"]).read_bytes()
            testbench.upload(BUCKET, f"raw/{entry['img']}", raw)
            requests[size] = job_requests(stack, BUCKET)[0]
        # What the requests write without faults.
        expected = {}
        for size, (endpoint, body) in requests.items():
            assert server.post(endpoint, body) == (200, "success")
            expected[size] = testbench.outputs()
            testbench.clear_outputs()
        yield testbench, proxy, server, requests, expected
    finally:
        server.stop()
        proxy.stop()
        testbench.stop()


@pytest.mark.parametrize("scenario,expect_success,method,instructions", scenario_cases())
def test_retry_conformance_scenario(bench, scenario, expect_success, method, instructions):
    testbench, proxy, server, requests, expected = bench
    size = 4000 if any("8192K" in instruction for instruction in instructions) else 1000
    endpoint, body = requests[size]
    retry_test = json.loads(testbench.call("POST", "/retry_test",
                                           {"instructions": {method: instructions}, "transport": "HTTP"}))
    with proxy.lock:
        proxy.test_id = retry_test["id"]
    try:
        status, reply = server.post(endpoint, body, accept="application/json")
    finally:
        with proxy.lock:
            proxy.test_id = None
    report = json.loads(reply)
    outputs = testbench.outputs()
    testbench.clear_outputs()

    # Every fault of the scenario was injected.
    state = json.loads(testbench.call("GET", f"/retry_test/{retry_test['id']}"))
    assert state["completed"], f"faults not all met: {state['instructions']}"
    # Nothing torn: each object there is whole.
    hidden = [name for name in outputs if HIDDEN_PART in name]
    whole = {name: data for name, data in outputs.items() if name not in hidden}
    assert [name for name, data in whole.items() if data != expected[size].get(name)] == []
    if expect_success or scenario in RETRIES_WITHOUT_PRECONDITION:
        assert (status, report["status"]) == (200, "success"), report
        assert sorted(whole) == sorted(expected[size]) and hidden == []
    elif method == "storage.objects.delete":
        # The object is whole and only a spent hidden part could not be deleted: that is a note
        # naming the part, not a failed task (src/storage/gcs/upload.rs).
        assert (status, report["status"]) == (200, "success"), report
        assert sorted(whole) == sorted(expected[size])
        assert len(hidden) == 1 and hidden[0].split(":", 1)[1] in " ".join(report["notes"]), (hidden, report)
    else:
        # A clear failure: the status GCS gave, naming the object and its bucket; no hidden part left.
        assert status == 502 and report["error"] == "storage", report
        assert "HTTP 400" in report["message"] or "HTTP 401" in report["message"], report
        assert f"in bucket {BUCKET}" in report["message"], report
        assert hidden == []
