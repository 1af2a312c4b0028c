"""One stack, three executors, one volume: `emwrite pipeline` in-process, `emwrite pipeline
--endpoint` against `emwrite serve` (directly, and behind a proxy that answers 503 with
`Retry-After: 1` at first), and `emwrite task` processes sharing each phase by their batch
index, all write the same objects byte for byte; so does the same stack as CSV. A bad CSV names
every bad line and writes nothing.
"""

import csv
import http.client
import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import Server, generate_stack, run_emwrite

# Two blocks in x (bbox 1200 × 350), six slices from z = 3, JPEG and raw volumes.
STACK_OPTIONS = dict(width=1100, height=250, margin=100, slices=6, minz=3)
DEST, DEST_TMP = "emdata", "emdata-tmp"
# 503s the proxy answers before it forwards anything.
REFUSALS = 4


@pytest.fixture(scope="module")
def inputs(make_stack, tmp_path_factory):
    """The raw slices and the stack file, generated once; each run copies them."""
    data = tmp_path_factory.mktemp("inputs") / "data"
    stack = generate_stack(make_stack, data, **STACK_OPTIONS)
    return data, stack


def fresh_data(inputs, where: Path) -> Path:
    """A data directory holding only the raw slices and the stack file."""
    source, _ = inputs
    data = where / "data"
    shutil.copytree(source, data)
    return data


def outputs(data: Path) -> dict:
    """Every object the tasks wrote (aligned PNGs, tile packs, infos, shards), by name."""
    found = {}
    for root in (data / DEST / "align", data / DEST / "neuroglancer", data / DEST_TMP):
        for path in sorted(root.rglob("*")):
            if path.is_file():
                found[str(path.relative_to(data))] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def in_process(emwrite, inputs, tmp_path_factory):
    """The reference: the stack run in-process."""
    data = fresh_data(inputs, tmp_path_factory.mktemp("in-process"))
    result = run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data), "--jobs", "2")
    assert "summary: " in result.stderr, result.stderr
    found = outputs(data)
    shards = [name for name in found if name.endswith(".shard")]
    assert len(shards) >= 2 * 5, f"both blocks at every scale: {shards}"
    assert any("/raw/" in name for name in shards) and any("/jpeg/" in name for name in shards)
    assert len([n for n in found if n.startswith(f"{DEST}/align/")]) == STACK_OPTIONS["slices"]
    return found


def summary(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "summary: " in line]
    assert lines, stderr
    return lines[-1]


class RefusingProxy:
    """Answers the first `refusals` POSTs with 503 and `Retry-After: 1`, then forwards every
    request to `upstream_port` and relays its answer."""

    def __init__(self, upstream_port: int, refusals: int):
        self.refused = 0
        self.forwarded = 0
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    refuse = proxy.refused < refusals
                    if refuse:
                        proxy.refused += 1
                    else:
                        proxy.forwarded += 1
                if refuse:
                    message = b"busy"
                    self.send_response(503)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request("POST", self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_remote_executor_gives_the_in_process_volume(emwrite, inputs, in_process, tmp_path):
    direct_data = fresh_data(inputs, tmp_path / "direct")
    proxied_data = fresh_data(inputs, tmp_path / "proxied")
    direct = Server(emwrite, direct_data)
    proxied = Server(emwrite, proxied_data)
    proxy = RefusingProxy(proxied.port, REFUSALS)
    try:
        for port, data in ((direct.port, direct_data), (proxy.port, proxied_data)):
            # The stack file lives outside the service's data dir: the driver only reads it.
            result = run_emwrite(
                emwrite, "pipeline", str(data / "stack.json"), "--endpoint", f"http://127.0.0.1:{port}",
                "--concurrency", "3", "--ramp-start", "20",
            )
            assert outputs(data) == in_process, f"through port {port}"
            assert_verifies(emwrite, data)
            assert "0 failed" in summary(result.stderr)
            if port == proxy.port:
                # Every refusal was retried after its Retry-After, and counted.
                assert proxy.refused == REFUSALS
                assert f"{REFUSALS} task retries" in summary(result.stderr), result.stderr
                assert "HTTP 503: busy" in result.stderr
            else:
                assert "0 task retries" in summary(result.stderr)
    finally:
        proxy.stop()
        direct.stop()
        proxied.stop()


def test_a_bad_request_fails_at_once_and_stops_the_phase(emwrite, inputs, tmp_path):
    data = fresh_data(inputs, tmp_path)
    (data / DEST / "raw" / "s0004.png").unlink()
    server = Server(emwrite, data)
    try:
        result = run_emwrite(
            emwrite, "pipeline", str(data / "stack.json"), "--endpoint", f"http://127.0.0.1:{server.port}",
            check=False,
        )
    finally:
        server.stop()
    assert result.returncode != 0
    # A 404 is not retried, and names the slice and the missing object.
    assert "slice z=4 (s0004.png)" in result.stderr and "HTTP 404" in result.stderr, result.stderr
    assert "0 task retries" in summary(result.stderr) and "1 failed" in summary(result.stderr)
    assert not (data / DEST / "neuroglancer").exists(), "later phases did not run"


def run_batch(emwrite, data, phase, shares):
    """Runs one batch task per environment in `shares` at once, as an engine would."""
    processes = [
        subprocess.Popen(
            [str(emwrite), "task", str(data / "stack.json"), "--phase", phase, "--data-dir", str(data),
             "--jobs", "1", *args],
            env={**{k: v for k, v in os.environ.items() if not k.endswith("_INDEX") and not k.endswith("_COUNT")},
                 **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for env, args in shares
    ]
    results = [(p.wait(), *p.communicate()) for p in processes]
    for code, _, stderr in results:
        assert code == 0, stderr
    return [stderr for _, _, stderr in results]


def tasks_run(stderr: str) -> int:
    return int(summary(stderr).split("summary: ")[1].split(" tasks")[0])


def test_batch_tasks_share_each_phase_and_give_the_in_process_volume(emwrite, inputs, in_process, tmp_path):
    data = fresh_data(inputs, tmp_path)
    # Cloud Run Jobs: index and count from the environment.
    cloud_run = [({"CLOUD_RUN_TASK_INDEX": str(i), "CLOUD_RUN_TASK_COUNT": "3"}, []) for i in range(3)]
    logs = run_batch(emwrite, data, "align", cloud_run)
    assert sorted(tasks_run(log) for log in logs) == [2, 2, 2], "six slices in three even shares"
    run_batch(emwrite, data, "meta", [({}, [])])
    # A Kubernetes Indexed Job: the index from the environment, the count from a flag or ours.
    kubernetes = [
        ({"JOB_COMPLETION_INDEX": "0"}, ["--task-count", "2"]),
        ({"JOB_COMPLETION_INDEX": "1", "EMWRITE_TASK_COUNT": "2"}, []),
    ]
    logs = run_batch(emwrite, data, "shard", kubernetes)
    assert [tasks_run(log) for log in logs] == [1, 1], "one block each"
    assert outputs(data) == in_process
    assert_verifies(emwrite, data)


def assert_verifies(emwrite, data: Path):
    """`emwrite verify` finds the volume in `data` complete."""
    stack = json.loads((data / "stack.json").read_text())
    result = run_emwrite(emwrite, "verify", stack["dest"], "--data-dir", str(data))
    # run_emwrite fails the test on a non-zero exit, which verify gives an incomplete volume.
    assert ": complete: " in result.stdout + result.stderr, result.stdout + result.stderr


def test_a_failing_batch_task_exits_non_zero_and_the_others_do_their_share(emwrite, inputs, tmp_path):
    data = fresh_data(inputs, tmp_path)
    (data / DEST / "raw" / "s0004.png").unlink()  # z = 4 is task 1: share 1 of 2
    results = [
        run_emwrite(emwrite, "task", str(data / "stack.json"), "--phase", "align", "--data-dir", str(data),
                    "--task-index", str(i), "--task-count", "2", check=False)
        for i in range(2)
    ]
    assert results[0].returncode == 0, results[0].stderr
    assert results[1].returncode != 0
    assert "slice z=4 (s0004.png)" in results[1].stderr
    written = {p.name for p in (data / DEST_TMP).iterdir()}
    # Share 0 is z = 3, 5, 7; share 1 (4, 6, 8) stops starting tasks after its failure.
    assert {"3", "5", "7"} <= written and "4" not in written, written
    missing = run_emwrite(emwrite, "task", str(data / "stack.json"), "--phase", "align", "--data-dir", str(data),
                          check=False, env={"JOB_COMPLETION_INDEX": "0"})
    assert missing.returncode != 0 and "EMWRITE_TASK_COUNT" in missing.stderr


def write_csv(path: Path, rows):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["z", "img", "a", "b", "c", "d", "e", "f"])
        writer.writerows(rows)


def csv_flags(stack):
    w, h = stack["bbox"]
    return ["--dest", DEST, "--dest-tmp", DEST_TMP, "--bbox", f"{w},{h}", "--write-raw"]


def test_a_csv_stack_gives_the_json_volume(emwrite, inputs, in_process, tmp_path):
    _, stack = inputs
    data = fresh_data(inputs, tmp_path)
    rows = [[s["z"], s["img"], *s["transform"]] for s in stack["slices"]]
    write_csv(tmp_path / "stack.csv", rows)
    run_emwrite(emwrite, "pipeline", str(tmp_path / "stack.csv"), *csv_flags(stack), "--data-dir", str(data))
    assert outputs(data) == in_process


def test_bad_csv_rows_are_all_named_by_line_and_nothing_runs(emwrite, inputs, tmp_path):
    _, stack = inputs
    data = fresh_data(inputs, tmp_path)
    rows = [[s["z"], s["img"], *s["transform"]] for s in stack["slices"]]
    rows[1][4] = "zero"            # line 3: column c
    rows[3] = rows[3][:7]          # line 5: a field short
    rows[4][0] = rows[0][0]        # line 6: z twice
    rows[5][2:8] = [0] * 6         # line 7: a degenerate transform
    write_csv(tmp_path / "bad.csv", rows)
    before = sorted(str(p) for p in data.rglob("*"))
    result = run_emwrite(emwrite, "pipeline", str(tmp_path / "bad.csv"), *csv_flags(stack), "--data-dir", str(data),
                         check=False)
    assert result.returncode != 0
    assert "4 problems" in result.stderr, result.stderr
    for expected in ["line 3: c: expected a number", "line 5: expected 8 fields, got 7",
                     f"line 6: z={rows[0][0]} appears twice (first at line 2)", "line 7: transform: "]:
        assert expected in result.stderr, result.stderr
    assert sorted(str(p) for p in data.rglob("*")) == before, "nothing was written"
    # The CSV's shared fields must be given.
    result = run_emwrite(emwrite, "pipeline", str(tmp_path / "bad.csv"), "--data-dir", str(data), check=False)
    assert result.returncode != 0 and "a CSV stack needs --dest" in result.stderr


def test_plan_counts_the_tasks_and_sizes_the_raw_slices(emwrite, inputs):
    source, stack = inputs
    raw_bytes = sum((source / DEST / "raw" / s["img"]).stat().st_size for s in stack["slices"])
    result = run_emwrite(emwrite, "plan", str(source / "stack.json"), "--data-dir", str(source), "--cores", "2")
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()}
    assert lines["align"].split()[1] == "6"
    assert lines["meta"].split()[1] == "1"
    assert lines["shard"].split()[1] == "2"
    assert "core-seconds" in lines["total:"]
    assert not (source / DEST / "align").exists(), "plan runs nothing"
    missing = run_emwrite(emwrite, "plan", str(source / "stack.json"), "--data-dir", str(source / "nowhere"))
    assert "unknown (6 of 6 not found)" in missing.stdout
    # The raw input is the slices' real size, as the plan shows it.
    assert raw_bytes > 0


def test_a_stack_file_on_gcs_is_read_from_gcs(emwrite, emulator, inputs, in_process, tmp_path):
    """`task`, `status`, `plan` and `pipeline` read a `gs://` stack file through the host's GCS
    access (here the emulator of STORAGE_EMULATOR_HOST), so a Cloud Run Job needs no volume for it;
    a missing stack object is an error that names it."""
    data = fresh_data(inputs, tmp_path)
    emulator.create_bucket("stack-files")
    emulator.upload("stack-files", "runs/1/stack.json", (data / "stack.json").read_bytes(), "application/json")
    (data / "stack.json").unlink()
    stack, env = "gs://stack-files/runs/1/stack.json", {"STORAGE_EMULATOR_HOST": emulator.url}
    for phase in ("align", "meta", "shard"):
        run_emwrite(emwrite, "task", stack, "--phase", phase, "--data-dir", str(data), "--jobs", "1", env=env)
    assert outputs(data) == in_process
    status = run_emwrite(emwrite, "status", stack, "--data-dir", str(data), env=env)
    assert "blocks 2/2 finished" in status.stdout, status.stdout
    plan = run_emwrite(emwrite, "plan", stack, "--data-dir", str(data), env=env)
    assert plan.stdout.splitlines()[0].startswith("stack: 6 slices"), plan.stdout
    rerun = run_emwrite(emwrite, "pipeline", stack, "--data-dir", str(data), env=env)
    assert "0 failed" in summary(rerun.stderr) and outputs(data) == in_process
    missing = run_emwrite(emwrite, "pipeline", "gs://stack-files/runs/2/stack.json", "--data-dir", str(data),
                          env=env, check=False)
    assert missing.returncode != 0
    assert "stack file gs://stack-files/runs/2/stack.json: runs/2/stack.json in bucket gs://stack-files: not found" \
        in missing.stderr, missing.stderr
