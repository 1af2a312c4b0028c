"""What each task of each size costs under `spin up`: the figures behind docs/spin.md's "What fits
where" (Akamai Functions: 128 MiB per execution, 30 s per request; Fermyon Cloud: 30 s per
request, 10 MB bodies, 500 outbound requests an hour; SpinKube: the pod's limits).

    scripts/spin-limits [--quick] [--work DIR]

Each task runs alone in a fresh `spin up` on local files (the app's spin.toml and Spin build,
`--direct-mounts --allow-transient-write`), so that the process's peak resident set before and
after the one request tells what the request added: the instance's linear memory, its buffers and
Spin's own per-request state. Time is the request's wall time as the client sees it. The inputs
of ngshard (aligned slices and tile packs of one block) are made beforehand by the native host.
It asserts nothing: it prints a Markdown table.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import Server, free_port, generate_stack  # noqa: E402
from gcs import wait_for_port  # noqa: E402
from job import job_requests  # noqa: E402

EMWRITE = ROOT / "target" / "release" / "emwrite"
MAKE_STACK = ROOT / "target" / "release" / "examples" / "make_stack"
SPIN_BUILD = ROOT / "target" / "spin" / "wasm32-wasip2" / "release" / "emwrite.wasm"
MIB = 1 << 20
# Akamai Functions' memory per execution.
AKAMAI = "128MiB"


def peak_rss(pid: int) -> int:
    """The largest peak resident set (VmHWM), in bytes, of `pid` and its descendants: `spin up`
    serves from a child process (`spin trigger http`)."""
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            peak = max(peak, peak_rss(int(child)))
    return peak


def post(port: int, endpoint: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{endpoint}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def under_spin(spin: str, app: Path, endpoint: str, body: dict) -> tuple[float, int, int, str]:
    """Runs one request in a fresh `spin up` in `app`: (seconds, bytes added to the peak RSS,
    peak RSS, status)."""
    port = free_port()
    with open(app / "spin-up.log", "a") as log:
        process = subprocess.Popen([spin, "up", "--listen", f"127.0.0.1:{port}", "--direct-mounts",
                                    "--allow-transient-write"], cwd=app, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process)
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").read()
            before = peak_rss(process.pid)
            start = time.monotonic()
            status, answer = post(port, endpoint, body)
            seconds = time.monotonic() - start
            after = peak_rss(process.pid)
        finally:
            process.terminate()
            process.wait()
    return seconds, after - before, after, f"{status} {answer.strip()[:60]}"


def fits_in(memory_limit: str, app: Path, endpoint: str, body: dict) -> str:
    """The answer of the native host with its instances capped at `memory_limit` (the same
    component code; the cap is on the instance's linear memory, which a platform's
    per-execution memory limit bounds): 200, or 413 when the task needs more."""
    server = Server(EMWRITE, app / "data", "--memory-limit", memory_limit)
    try:
        status, answer = server.post(endpoint, body)
    finally:
        server.stop()
    return f"{status} {answer.strip()[:60]}"


def make_app(work: Path, name: str) -> Path:
    """A Spin app folder: spin.toml, the Spin build where it says, and an empty data folder."""
    app = work / name
    source = app / SPIN_BUILD.relative_to(ROOT)
    source.parent.mkdir(parents=True)
    shutil.copy(ROOT / "spin.toml", app / "spin.toml")
    shutil.copy(SPIN_BUILD, source)
    (app / "data").mkdir()
    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small sizes only")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args()
    spin = os.environ.get("SPIN") or shutil.which("spin")
    if not spin:
        sys.exit("no Spin CLI: set SPIN or put spin on PATH")
    for path in (EMWRITE, MAKE_STACK, SPIN_BUILD):
        if not path.exists():
            sys.exit(f"{path} is missing: build it (scripts/spin-limits does)")
    work = args.work or Path(tempfile.mkdtemp(prefix="spin-limits-"))
    rows = []

    # alignedslice: one slice, aligned into a square bbox of the given edge.
    for edge in (1024, 2048) if args.quick else (1024, 2048, 4096, 8192):
        app = make_app(work, f"aligned-{edge}")
        stack = generate_stack(MAKE_STACK, app / "data", width=edge - 100, height=edge - 100, slices=1, minz=0)
        endpoint, body = job_requests(stack, stack["dest"])[0]
        seconds, added, peak, status = under_spin(spin, app, endpoint, body)
        rows.append((f"alignedslice {edge}²", seconds, added, peak, status, fits_in(AKAMAI, app, endpoint, body)))

    # ngmeta (the same for any size), then ngshard of one block of 1024 × 1024 with N slices.
    for slices in (8, 32) if args.quick else (8, 64, 256, 1024):
        app = make_app(work, f"block-{slices}")
        stack = generate_stack(MAKE_STACK, app / "data", width=924, height=924, slices=slices, minz=0)
        requests = job_requests(stack, stack["dest"])
        native = Server(EMWRITE, app / "data")
        try:
            for endpoint, body in requests:
                if endpoint == "alignedslice":
                    assert native.post(endpoint, body) == (200, "success"), (endpoint, body)
        finally:
            native.stop()
        for endpoint, body in requests:
            if endpoint == "ngmeta":
                seconds, added, peak, status = under_spin(spin, app, endpoint, body)
                if slices == 8:
                    rows.append(("ngmeta", seconds, added, peak, status, fits_in(AKAMAI, app, endpoint, body)))
            if endpoint == "ngshard":
                seconds, added, peak, status = under_spin(spin, app, endpoint, body)
                rows.append((f"ngshard 1024² × {slices} slices", seconds, added, peak, status,
                             fits_in(AKAMAI, app, endpoint, body)))

    print(f"| task | time under `spin up` | peak RSS added by the request | spin's peak RSS | answer | "
          f"in a {AKAMAI} instance |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for task, seconds, added, peak, status, capped in rows:
        print(f"| {task} | {seconds:.2f} s | {added / MIB:.0f} MiB | {peak / MIB:.0f} MiB | {status} | {capped} |")
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
