"""`emwrite serve` under abuse (issue 10): kills, SIGTERM, oversized and slow clients, load, auth.

Every server listens on loopback only; loops are bounded; nothing asserts how fast anything is,
only that limits hold (status codes, that a connection closes at all, peak memory).
"""

import json
import random
import re
import shutil
import signal
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import Server, generate_stack
from job import job_requests

# `.<name>.tmp-<16 hex>-<n>`: the temporary file of a put (storage/fs.rs `is_temp_file_name`).
TEMP_NAME = re.compile(r"^\..+\.tmp-[0-9a-f]{16}-[0-9]+$")
MIB = 1 << 20


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def outputs(data_dir: Path, stack: dict) -> dict[str, bytes]:
    """Every object the job wrote (not the raw slices, not temporary files), by path."""
    found = {}
    for path in sorted(data_dir.rglob("*")):
        rel = path.relative_to(data_dir).as_posix()
        if path.is_file() and not rel.startswith(f"{stack['dest']}/raw/") and not TEMP_NAME.match(path.name) \
                and rel != "stack.json":
            found[rel] = path.read_bytes()
    return found


def temp_files(data_dir: Path) -> list[str]:
    return [p.as_posix() for p in data_dir.rglob("*") if TEMP_NAME.match(p.name)]


def fresh_data_dir(source: Path, target: Path) -> Path:
    """A data dir holding only the stack's raw slices."""
    shutil.copytree(source, target)
    return target


def run_job(server: Server, stack: dict, headers: dict | None = None):
    for endpoint, body in job_requests(stack, stack["dest"]):
        status, text = server.post(endpoint, body, headers=headers)
        assert status == 200, (endpoint, status, text)


@pytest.fixture(scope="module")
def stack_source(make_stack, tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening-stack") / "data"
    stack = generate_stack(make_stack, root, width=1100, height=300, slices=6)
    return root, stack


@pytest.fixture(scope="module")
def reference(emwrite, stack_source, tmp_path_factory):
    """An uninterrupted run's objects, and how long the job took."""
    source, stack = stack_source
    data_dir = fresh_data_dir(source, tmp_path_factory.mktemp("hardening-ref") / "data")
    server = Server(emwrite, data_dir)
    try:
        started = time.monotonic()
        run_job(server, stack)
        took = time.monotonic() - started
    finally:
        server.stop()
    objects = outputs(data_dir, stack)
    assert any(name.endswith(".shard") for name in objects), sorted(objects)
    return objects, took


@pytest.fixture(scope="module")
def prepared(emwrite, stack_source, reference, tmp_path_factory):
    """A data dir where alignedslice and ngmeta have run: ngshard requests can run alone."""
    source, stack = stack_source
    data_dir = fresh_data_dir(source, tmp_path_factory.mktemp("hardening-prepared") / "data")
    server = Server(emwrite, data_dir)
    try:
        for endpoint, body in job_requests(stack, stack["dest"]):
            if endpoint != "ngshard":
                assert server.post(endpoint, body)[0] == 200
    finally:
        server.stop()
    return data_dir, stack


def ngshard_requests(stack: dict) -> list[dict]:
    return [body for endpoint, body in job_requests(stack, stack["dest"]) if endpoint == "ngshard"]


# Kills: whole or absent, then a restart sweeps and the rerun writes the same bytes.

def test_kill_9_leaves_objects_whole_and_a_restart_sweeps_and_rewrites(emwrite, stack_source, reference, tmp_path):
    source, stack = stack_source
    expected, took = reference
    rng = random.Random(10)
    trials = 8
    cut = {"temporary files left": 0, "objects missing": 0}
    for trial in range(trials):
        data_dir = fresh_data_dir(source, tmp_path / f"trial{trial}" / "data")
        server = Server(emwrite, data_dir)
        # Requests fail once the server is gone: the job is cut wherever the kill lands.
        runner = threading.Thread(target=lambda: _job_until_cut(server, stack), daemon=True)
        runner.start()
        time.sleep(rng.uniform(0.05, max(0.1, took)))
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        server.log.close()
        runner.join(timeout=60)
        written = outputs(data_dir, stack)
        for name, data in written.items():
            assert data == expected[name], f"trial {trial}: {name} is not whole"
        cut["temporary files left"] += len(temp_files(data_dir))
        cut["objects missing"] += len(expected) - len(written)

        restarted = Server(emwrite, data_dir, "--stale-temp-age", "0s")
        try:
            assert temp_files(data_dir) == [], f"trial {trial}: the start did not sweep"
            run_job(restarted, stack)
        finally:
            restarted.stop()
        assert outputs(data_dir, stack) == expected, f"trial {trial}: the rerun differs"
        assert temp_files(data_dir) == []
    print(f"kill -9 over {trials} trials (job {took:.1f} s): {cut}")


def _job_until_cut(server: Server, stack: dict):
    try:
        for endpoint, body in job_requests(stack, stack["dest"]):
            server.post(endpoint, body)
    except OSError:
        pass


# SIGTERM: in-flight requests finish, new ones are refused, the exit is clean.

def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(emwrite, prepared, tmp_path):
    data_dir, stack = prepared
    server = Server(emwrite, data_dir, "--shutdown-grace", "60s")
    body = json.dumps(ngshard_requests(stack)[0]).encode()
    # The request is surely in flight when SIGTERM arrives: half its body is still to come.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=120)
    sock.sendall(b"POST /ngshard HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    try:
        late = server.post("ngshard", json.loads(body))[0]
    except OSError:
        late = "refused"
    sock.sendall(body[10:])
    # The server closes the connection after this last response.
    answer = b""
    for _ in range(10_000):
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200") and b"\r\nsuccess\r\n" in answer, answer
    assert late in (503, "refused")
    assert server.process.wait(timeout=60) == 0
    server.log.close()
    assert "every request finished" in (data_dir.parent / f"serve-{server.port}.log").read_text()


def test_connections_past_max_connections_are_closed_at_once(emwrite, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = Server(emwrite, data_dir, "--max-connections", "2")
    # The readiness probe's connection may still hold its slot for a moment.
    time.sleep(0.5)
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        time.sleep(0.5)
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        try:
            assert extra.recv(4096) == b""
        except ConnectionResetError:
            pass
        extra.close()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert server.get("/healthz") == (200, "ok\n")
    server.stop()


# Limits.

def test_chunked_body_over_max_body_gets_413_without_buffering_it(emwrite, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = Server(emwrite, data_dir, "--max-body", "1MiB")
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(b"POST /ngmeta HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % (64 * 1024) + b"x" * (64 * 1024) + b"\r\n"
        sent = 0
        try:
            while sent < 64 * MIB:
                sock.sendall(chunk)
                sent += 64 * 1024
        except OSError:
            pass  # the server stopped reading: the point
        try:
            answer = sock.recv(65536)
        except OSError:
            answer = b""  # a reset can discard the answer; the log and memory still tell
        sock.close()
        assert sent < 64 * MIB or answer.startswith(b"HTTP/1.1 413")
        if answer:
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert b'"error":"too-large"' in answer and b"body: larger than 1048576 bytes" in answer
        peak = peak_rss_bytes(server.process.pid)
        print(f"chunked 64 MiB body: sent {sent / MIB:.1f} MiB before the cut, server VmHWM {peak / MIB:.0f} MiB")
        assert peak < 200 * MIB
    finally:
        server.stop()
    assert " 413 " in (data_dir.parent / f"serve-{server.port}.log").read_text()


def test_half_sent_headers_are_closed_after_header_timeout(emwrite, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = Server(emwrite, data_dir, "--header-timeout", "1s")
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        sock.sendall(b"POST /ngmeta HTTP/1.1\r\nHost: x\r\n")
        try:
            closed = sock.recv(4096) is not None  # b"" (closed) or a 408; either way not held
        except ConnectionResetError:
            closed = True
        sock.close()
        assert closed
    finally:
        server.stop()


def test_many_idle_connections_do_not_stop_healthz(emwrite, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = Server(emwrite, data_dir)
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    try:
        for sock in idle[::2]:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # half the headers
        assert server.get("/healthz") == (200, "ok\n")
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_headers_without_body_get_408_after_idle_timeout(emwrite, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = Server(emwrite, data_dir, "--idle-timeout", "1s")
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        sock.sendall(b"POST /ngmeta HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = sock.recv(4096)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
    finally:
        server.stop()


def test_over_max_in_flight_gets_503_with_retry_after(emwrite, prepared, reference):
    data_dir, stack = prepared
    expected, _ = reference
    server = Server(emwrite, data_dir, "--max-in-flight", "1")
    try:
        body = ngshard_requests(stack)[0]
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: _post_with_headers(server, "ngshard", body), range(3)))
        statuses = sorted(status for status, _, _ in answers)
        assert 200 in statuses and 503 in statuses, statuses
        for status, headers, text in answers:
            assert status in (200, 503), (status, text)
            if status == 503:
                assert headers.get("Retry-After") == "1"
        written = outputs(data_dir, stack)
        for name, data in written.items():
            if name.endswith(".shard"):
                assert data == expected[name]
    finally:
        server.stop()


def _post_with_headers(server: Server, endpoint: str, body, headers: dict | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/{endpoint}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def test_405_says_allow_and_head_healthz_answers(server):
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/ngmeta", method="GET")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 405 and caught.value.headers["Allow"] == "POST"
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/healthz", method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 405 and caught.value.headers["Allow"] == "GET, HEAD"
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{server.port}/healthz",
                                                       method="HEAD")) as response:
        assert response.status == 200


def test_json_success_reports_notes_and_stages(emwrite, prepared):
    data_dir, stack = prepared
    server = Server(emwrite, data_dir)
    try:
        status, text = server.post("ngshard", ngshard_requests(stack)[0], accept="application/json")
    finally:
        server.stop()
    assert status == 200, text
    answer = json.loads(text)
    assert answer["notes"] == [] or all(isinstance(n, str) for n in answer["notes"])
    assert set(answer["stages"]) == {"fetch_us", "decode_us", "resample_us", "downsample_us", "encode_us", "write_us"}
    assert answer["stages"]["encode_us"] > 0


def test_bearer_token_is_required_except_for_healthz(emwrite, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    server = Server(emwrite, data_dir, "--auth-token-file", str(token_file))
    try:
        status, headers, _ = _post_with_headers(server, "ngmeta", {})
        assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
        status, _, _ = _post_with_headers(server, "ngmeta", {}, {"Authorization": "Bearer wrong"})
        assert status == 401
        # Admitted: the component answers, here that the request lacks its fields.
        status, _, text = _post_with_headers(server, "ngmeta", {}, {"Authorization": "Bearer s3cret-token"})
        assert status == 400, text
        assert server.get("/healthz") == (200, "ok\n")
    finally:
        server.stop()
    assert "s3cret-token" not in (data_dir.parent / f"serve-{server.port}.log").read_text()


# Load: bounded, mixed, against a small stack.

def test_bounded_mixed_load_with_two_in_flight(emwrite, prepared, reference, tmp_path):
    """40 clients at once, each retrying on 503 as Retry-After says (at most 120 times): every
    request is eventually accepted and correct, at most two compute at a time."""
    data_dir, stack = prepared
    expected, _ = reference
    memory_limit = 512 * MIB
    server = Server(emwrite, data_dir, "--max-in-flight", "2", "--memory-limit", "512MiB")
    requests = job_requests(stack, stack["dest"])
    mixed = [requests[i % len(requests)] for i in range(40)]
    health = []
    refused = []
    stop = threading.Event()

    def watch_health():
        while not stop.is_set() and len(health) < 2000:
            health.append(server.get("/healthz")[0])
            time.sleep(0.1)

    def client(request):
        for _ in range(120):
            status, headers, text = _post_with_headers(server, request[0], request[1])
            if status != 503:
                return status, text
            assert headers.get("Retry-After") == "1", headers
            refused.append(1)
            time.sleep(int(headers["Retry-After"]) * random.uniform(0.5, 1.0))
        return 503, "still refused after 120 tries"

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(client, mixed))
        wall = time.monotonic() - started
        stop.set()
        watcher.join()
        peak = peak_rss_bytes(server.process.pid)
    finally:
        stop.set()
        server.stop()
    assert all(answer == (200, "success") for answer in answers), answers
    for name, data in outputs(data_dir, stack).items():
        assert data == expected[name], name
    assert health and all(status == 200 for status in health), health
    print(f"load: 40 requests, max-in-flight 2: 40 accepted, {len(refused)} refusals (503) retried, "
          f"peak RSS {peak / MIB:.0f} MiB, wall {wall:.1f} s, /healthz {len(health)}x 200")
    assert peak < 2 * memory_limit


# The sweep at start, deterministically: a planted temporary file of a cut put.

def test_start_sweeps_temporary_files_older_than_stale_temp_age(emwrite, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "lab" / "vol").mkdir(parents=True)
    stale = data_dir / "lab" / "vol" / ".0.shard.tmp-00c0ffee00c0ffee-3"
    stale.write_bytes(b"half a shard")
    kept = data_dir / "lab" / "vol" / "notes.tmp"  # not a put's temporary name
    kept.write_bytes(b"mine")
    # The default age (1h) spares a file just written: it may be another process's put.
    Server(emwrite, data_dir).stop()
    assert stale.exists()
    Server(emwrite, data_dir, "--stale-temp-age", "0s").stop()
    assert not stale.exists() and kept.exists()
    assert "removed 1 stale temporary file(s)" in "".join(
        p.read_text() for p in tmp_path.glob("serve-*.log"))


# Isolation: a bucket folder that is a link out of the data dir is refused, nothing lands outside.

def test_a_bucket_linked_out_of_the_data_dir_is_refused(emwrite, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (data_dir / "escape").symlink_to(outside, target_is_directory=True)
    server = Server(emwrite, data_dir)
    try:
        status, text = server.post("ngmeta", {"dest": "escape", "minz": 0, "maxz": 3, "shard-size": 1024,
                                              "bbox": "[1100, 300]", "writeRaw": "True"})
    finally:
        server.stop()
    assert status in (400, 404), (status, text)
    assert list(outside.rglob("*")) == []
