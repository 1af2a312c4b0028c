"""The benchmark harness: emwrite against the original service's way, same inputs, same run.

    scripts/bench [--quick] [--scaling] [--runs N] [--bin-dir DIR] [--only NAME ...]

Generates the inputs once (EM-like stacks from `make_stack`, their tile packs and infos through
`emwrite pipeline` and `emwrite run ngmeta`; kept under --work between runs), then runs every
scenario N times, alternating emwrite and its peer (and which of them goes first), each as its
own process:

- ngshard, one 1024³ block, JPEG and JPEG + raw: `emwrite run ngshard` against
  `peers/original_ngshard.py` (threaded range reads, Pillow, a numpy block, tensorstore); and
  JPEG + raw split in two halves, emwrite alone (its memory bound);
- serve: the JPEG block through `emwrite serve` (POST /ngshard) against `emwrite run ngshard`;
- the same block on GCS: fake-gcs-server behind a loopback TCP proxy that counts the connections
  it accepts and delays the first byte of every response by 0 or 20 ms;
- alignedslice at 4096² and 8192²: `emwrite run alignedslice` against `peers/pillow_resample.py
  alignedslice` (the original's Pillow calls);
- cold start: a fresh `emwrite serve --port 0` to its first answer (POST /ngmeta), with an empty
  wasmtime cache (the component is compiled) and with the cache that run left (it is loaded).

Wall time is measured around each process, CPU-seconds (user + sys) and peak RSS come from
`os.wait4`: the process's own maximum resident set, which for emwrite is host, wasmtime and the
component's linear memory together, for the peer the Python process with tensorstore's threads.
Ratios are emwrite / peer of the medians (below 1 is emwrite better). The Markdown table it prints
is the one in docs/performance.md (the README shows its main rows). Nothing here asserts a time: it is
a harness.

--quick is a smoke check: 1 run, a 64-slice block instead of 1024 slices (the peer still holds a
whole 1 GiB block, so its memory and the ratios are not the full-block figures). --scaling adds
item 8's sweeps: alignedslice at 16384² and at the hemibrain slice (34432 × 39552), and ngshard
blocks of 64, 256 and 1024 slices, emwrite only where the peer would take too long (marked).
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benches" / "peers"
# tests/gcs.py: the fake-gcs-server emulator the system tests start.
sys.path.insert(0, str(ROOT / "tests"))
MIB = 1024 * 1024


# ---------------------------------------------------------------- measuring one process


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mib: float
    connections: int | None = None
    error: str | None = None


def measure(args, env=None, log: Path | None = None) -> Run:
    """Runs `args` to completion: wall seconds, user + sys CPU-seconds and peak RSS (wait4)."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    start = time.perf_counter()
    process = subprocess.Popen([str(a) for a in args], env={**os.environ, **(env or {})}, stdout=out, stderr=out)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if log:
        out.close()
    error = None
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log else []
        error = f"exit {os.waitstatus_to_exitcode(status)}: {tail[0][:160] if tail else ''}"
        print(f"  FAILED {' '.join(map(str, args))}: {error} (log {log})", file=sys.stderr)
    else:
        what = " ".join(Path(str(a)).name for a in args[:3])
        print(f"  {what}: {wall:.2f} s, {usage.ru_utime + usage.ru_stime:.2f} CPU-s, "
              f"{usage.ru_maxrss / 1024:.0f} MiB", file=sys.stderr)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, error=error)


@dataclass
class Side:
    """The runs of one side (emwrite or peer) of one scenario."""

    runs: list = field(default_factory=list)

    def ok(self):
        return [r for r in self.runs if r.error is None]

    def median(self, attr):
        values = [getattr(r, attr) for r in self.ok() if getattr(r, attr) is not None]
        return statistics.median(values) if values else None

    def peak(self):
        return max((r.peak_mib for r in self.ok()), default=None)

    def cell(self):
        if not self.runs:
            return "—"
        if not self.ok():
            return f"failed ({self.runs[-1].error})"
        text = f"{self.median('wall'):.2f} s, {self.median('cpu'):.2f} CPU-s, {self.peak():.0f} MiB"
        if self.median("connections") is not None:
            text += f", {self.median('connections'):.0f} conns"
        return text


# ---------------------------------------------------------------- a counting, delaying TCP proxy


class DelayProxy:
    """A loopback TCP proxy in front of `upstream_port`: counts the connections it accepts and
    holds back the first byte of every response by `delay` seconds. HTTP/1.1 clients do not
    pipeline, so the first upstream bytes after the client has sent something begin a response."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.delay = 0.0
        self.accepted = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, client_reader, client_writer):
        self.accepted += 1
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        awaiting_response = [False]

        async def pipe(reader, writer, to_client):
            try:
                while data := await reader.read(256 * 1024):
                    if to_client and awaiting_response[0] and self.delay:
                        await asyncio.sleep(self.delay)
                    awaiting_response[0] = not to_client
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, upstream_writer, False), pipe(upstream_reader, client_writer, True))


# ---------------------------------------------------------------- inputs


class Bench:
    def __init__(self, args):
        self.args = args
        self.emwrite = args.bin_dir / "emwrite"
        self.make_stack = args.bin_dir / "examples" / "make_stack"
        self.work = args.work
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "runs.log"
        self.python = sys.executable

    def run(self, *args, env=None):
        with open(self.log, "ab") as log:
            subprocess.run([str(a) for a in args], check=True, stdout=log, stderr=log, env={**os.environ, **(env or {})})

    def stack(self, name: str, width: int, height: int, slices: int, margin: int = 0) -> Path:
        """An EM-like stack from make_stack (raw slices only), generated once. The aligned frame
        (bbox) is the raw size plus `margin`."""
        data = self.work / name
        if not (data / "stack.json").exists():
            print(f"generating {name}: {slices} slice(s) of {width}×{height}", file=sys.stderr)
            self.run(self.make_stack, "--data-dir", data, "--width", width, "--height", height, "--margin", margin,
                     "--minz", 0, "--slices", slices)
        return data

    def ngshard_inputs(self, slices: int) -> Path:
        """Tile packs of a 1024² stack (through `emwrite pipeline`) and ngmeta's infos for the two
        destinations `ours` and `peer`."""
        data = self.stack(f"ngshard-{slices}", 1024, 1024, slices)
        fresh = not (data / "peer" / "neuroglancer" / "raw" / "info").exists()
        if fresh:
            print(f"tile packs of ngshard-{slices} (emwrite pipeline, not timed)", file=sys.stderr)
            self.run(self.emwrite, "pipeline", data / "stack.json", "--data-dir", data)
        # emwrite's infos are written again by the build under test (its sharding may differ from
        # an earlier build's); the peer's stay as first written.
        for dest in ("ours", "peer") if fresh else ("ours",):
            self.write_json(data / f"ngmeta-{dest}.json", {"dest": dest, "minz": 0, "maxz": slices - 1,
                                                           "bbox": "[1024, 1024]", "writeRaw": "True"})
            self.run(self.emwrite, "run", "ngmeta", data / f"ngmeta-{dest}.json", "--data-dir", data)
        return data

    @staticmethod
    def write_json(path: Path, value) -> Path:
        path.write_text(json.dumps(value))
        return path

    def ngshard_requests(self, data: Path, slices: int, write_raw: bool, maxz=None) -> dict:
        request = {"source": "emdata-tmp", "start": [0, 0, 0], "shard-size": 1024, "minz": 0,
                   "maxz": (maxz if maxz is not None else slices - 1), "bbox": "[1024, 1024]",
                   "writeRaw": str(write_raw)}
        tag = f"{'raw' if write_raw else 'jpeg'}-{request['maxz']}"
        return {dest: self.write_json(data / f"ngshard-{dest}-{tag}.json", {**request, "dest": dest})
                for dest in ("ours", "peer")}

    @staticmethod
    def warm(folder: Path):
        """Reads every file in `folder` (untimed), so that each side starts with the inputs in the
        page cache: the machine's memory reclaim evicts the 1 GiB of tile packs between runs, and
        whichever side ran first after that paid for the disk."""
        for path in folder.iterdir():
            with open(path, "rb") as file:
                while file.read(1 << 24):
                    pass

    @staticmethod
    def clear_volume(data: Path, dest: str):
        """Removes what an earlier run wrote under <dest>/neuroglancer, keeping the infos."""
        for encoding in ("jpeg", "raw"):
            for child in (data / dest / "neuroglancer" / encoding).glob("*"):
                if child.is_dir():
                    shutil.rmtree(child)

    # ------------------------------------------------------------ scenarios

    def alternate(self, ours, peer, runs=None, start=0) -> tuple[Side, Side]:
        """Runs `ours()` and `peer()` N times each, alternating which goes first."""
        a, b = Side(), Side()
        for i in range(start, start + (runs or self.args.runs)):
            order = [(a, ours), (b, peer)] if i % 2 == 0 else [(b, peer), (a, ours)]
            for side, job in order:
                if job is not None:
                    side.runs.append(job())
        return a, b

    def ngshard_local(self, slices: int, write_raw: bool, split: str = "auto", with_peer: bool = True):
        """The block on local disk, `emwrite run ngshard --split SPLIT` against the peer."""
        data = self.ngshard_inputs(slices)
        requests = self.ngshard_requests(data, slices, write_raw)

        def ours():
            self.clear_volume(data, "ours")
            self.warm(data / "emdata-tmp")
            return measure([self.emwrite, "run", "ngshard", requests["ours"], "--data-dir", data, "--split", split],
                           log=self.log)

        def peer():
            self.clear_volume(data, "peer")
            self.warm(data / "emdata-tmp")
            return measure([self.python, PEERS / "original_ngshard.py", requests["peer"], "--data-dir", data],
                           log=self.log)

        return self.alternate(ours, peer if with_peer else None)

    def ngshard_serve(self, slices: int) -> tuple[Side, Side]:
        """The JPEG block through `emwrite serve` (POST /ngshard, what the Cloud Run service and
        the remote driver send) against `emwrite run ngshard`, both splitting as they decide
        (`--split auto`, two cores). Serve's wall is the request's; its CPU and peak the whole
        process's, from a fresh start with the component cache of the runs before."""
        data = self.ngshard_inputs(slices)
        requests = self.ngshard_requests(data, slices, False)
        body = requests["ours"].read_bytes()

        def run():
            self.clear_volume(data, "ours")
            self.warm(data / "emdata-tmp")
            return measure([self.emwrite, "run", "ngshard", requests["ours"], "--data-dir", data], log=self.log)

        def serve():
            self.clear_volume(data, "ours")
            self.warm(data / "emdata-tmp")
            return self._serve_once(data, "ngshard", body, None)

        return self.alternate(serve, run)

    def ngshard_gcs(self, slices: int) -> dict:
        """The JPEG block on fake-gcs-server through the proxy, without and with the delay."""
        from gcs import Emulator, wait_for_port

        data = self.ngshard_inputs(slices)
        requests = self.ngshard_requests(data, slices, False)
        port = free_port()
        emulator = Emulator(port, self.work / "fake-gcs-server.log")
        try:
            wait_for_port(port)
            print(f"uploading {slices} tile packs to fake-gcs-server", file=sys.stderr)
            for bucket in ("emdata-tmp", "ours", "peer"):
                emulator.create_bucket(bucket)
            packs = sorted((data / "emdata-tmp").iterdir(), key=lambda p: int(p.name))
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda p: emulator.upload("emdata-tmp", p.name, p.read_bytes()), packs))
            for bucket in ("ours", "peer"):
                for encoding in ("jpeg", "raw"):
                    info = data / bucket / "neuroglancer" / encoding / "info"
                    emulator.upload(bucket, f"neuroglancer/{encoding}/info", info.read_bytes(), "application/json")
            proxy = DelayProxy(port)
            url = f"http://127.0.0.1:{proxy.port}"

            def counted(command, env, dest):
                def job():
                    clear_bucket(emulator, dest)
                    proxy.accepted = 0
                    run = measure(command, env=env, log=self.log)
                    run.connections = proxy.accepted
                    return run
                return job

            ours = counted([self.emwrite, "run", "ngshard", requests["ours"], "--store", "gcs"],
                           {"STORAGE_EMULATOR_HOST": url}, "ours")
            peer = counted([self.python, PEERS / "original_ngshard.py", requests["peer"], "--gcs", url],
                           {"TENSORSTORE_GCS_HTTP_URL": url, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "dummy"}, "peer")
            sides = {0: (Side(), Side()), 20: (Side(), Side())}
            for i in range(self.args.runs):
                for delay in ((0, 20) if i % 2 == 0 else (20, 0)):
                    proxy.delay = delay / 1000
                    a, b = self.alternate(ours, peer, runs=1, start=i)
                    sides[delay][0].runs += a.runs
                    sides[delay][1].runs += b.runs
            return sides
        finally:
            emulator.stop()

    def aligned_slice(self, width: int, height: int, with_peer=True, margin=0):
        """One slice aligned into a width × height frame; the raw slice is `margin` smaller."""
        name = f"aligned-{width}x{height}" + (f"-margin{margin}" if margin else "")
        data = self.stack(name, width - margin, height - margin, 1, margin)
        entry = json.loads((data / "stack.json").read_text())["slices"][0]
        request = self.write_json(data / "alignedslice.json", {
            "img": entry["img"], "transform": entry["transform"], "bbox": [width, height], "dest": "emdata",
            "dest-tmp": "emdata-tmp", "slice": entry["z"], "shard-size": 1024})
        ours = lambda: measure([self.emwrite, "run", "alignedslice", request, "--data-dir", data], log=self.log)
        peer = lambda: measure([self.python, PEERS / "pillow_resample.py", "alignedslice", request,
                                "--data-dir", data, "--out-dest", "peer", "--out-tmp", "peer-tmp"], log=self.log)
        return self.alternate(ours, peer if with_peer else None)

    def cold_start(self):
        """`emwrite serve --port 0` to the first answer of POST /ngmeta; then SIGTERM, and wait4's
        CPU and peak. The first start of each round has an empty wasmtime cache (XDG_CACHE_HOME),
        the second reuses it."""
        data = self.work / "cold"
        data.mkdir(exist_ok=True)
        body = json.dumps({"dest": "cold", "minz": 0, "maxz": 0, "bbox": "[1024, 1024]"}).encode()
        fresh, warm = Side(), Side()
        for _ in range(self.args.runs):
            cache = Path(tempfile.mkdtemp(prefix="cache-", dir=self.work))
            for side in (fresh, warm):
                side.runs.append(self._serve_once(data, "ngmeta", body, cache))
            shutil.rmtree(cache)
        peer = Side()
        for _ in range(self.args.runs):
            peer.runs.append(measure([self.python, "-c", "import numpy, PIL.Image, tensorstore"]))
        return fresh, warm, peer

    def _serve_once(self, data, endpoint, body, cache) -> Run:
        """A fresh `emwrite serve` answering one POST /<endpoint>, then SIGTERM. With `cache`
        (XDG_CACHE_HOME) the wall runs from the start to the answer, the cold start; without, it
        is the request's alone."""
        start = time.perf_counter()
        env = {**os.environ, "XDG_CACHE_HOME": str(cache)} if cache else None
        process = subprocess.Popen([str(self.emwrite), "serve", "--port", "0", "--data-dir", str(data)],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        error = None
        try:
            line = process.stdout.readline().strip()
            address = line.removeprefix("listening on ")
            if not cache:
                start = time.perf_counter()
            request = urllib.request.Request(f"{address}/{endpoint}", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=600) as response:
                answer = response.read().decode()
            if answer != "success":
                error = f"answered {answer[:100]}"
        except Exception as e:  # noqa: BLE001 - a harness reports, it does not stop
            error = f"{type(e).__name__}: {e}"
        wall = time.perf_counter() - start
        process.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(process.pid, 0)
        process.stdout.close()
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, error=error)


def clear_bucket(emulator, bucket: str):
    """Deletes what an earlier run wrote to `bucket`, keeping the infos (straight to the emulator,
    not through the proxy, so it is not counted)."""
    for name in emulator.list(bucket):
        if not name.endswith("/info"):
            quoted = urllib.parse.quote(name, safe="")
            request = urllib.request.Request(f"{emulator.url}/storage/v1/b/{bucket}/o/{quoted}", method="DELETE")
            urllib.request.urlopen(request).read()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the report


def ratio(ours: Side, peer: Side, attr: str) -> float | None:
    a, b = ours.median(attr), peer.median(attr)
    return a / b if a is not None and b else None


def verdict(ok: bool | None, text: str) -> str:
    return f"{'✓' if ok else '✗'} {text}" if ok is not None else f"? {text}"


def check_le(value, bound, text) -> str:
    return verdict(None if value is None else value <= bound, text.format(value if value is not None else float("nan")))


class Table:
    def __init__(self):
        self.rows = []

    def add(self, scenario, ours: Side, peer: Side, target="—", met="—"):
        wall, cpu = ratio(ours, peer, "wall"), ratio(ours, peer, "cpu")
        ratios = "—" if wall is None else f"{wall:.2f}× wall, {cpu:.2f}× CPU"
        self.rows.append(f"| {scenario} | {ours.cell()} | {peer.cell()} | {ratios} | {target} | {met} |")

    def markdown(self) -> str:
        head = ("| scenario | emwrite: wall, CPU-s, peak RSS | peer: wall, CPU-s, peak RSS | ratio emwrite/peer "
                "| target | met? |\n| --- | --- | --- | --- | --- | --- |")
        return "\n".join([head, *self.rows])


# alignedslice's bounds (#18): a hemibrain-sized slice (1.36 Gpx) in 20 s at ~15 ns a pixel.
ALIGNED_SLICE_WALL_RATIO = 0.12
ALIGNED_SLICE_PEAK_MIB = 256


def aligned_slice_targets(ours: Side, peer: Side):
    """The target and verdict of an alignedslice row: wall against Pillow's path (when the peer
    ran) and peak memory."""
    checks, targets = [check_le(ours.peak(), ALIGNED_SLICE_PEAK_MIB, "{:.0f} MiB")], [f"peak ≤ {ALIGNED_SLICE_PEAK_MIB} MiB"]
    if peer.ok():
        targets.insert(0, f"wall ≤ {ALIGNED_SLICE_WALL_RATIO}×")
        checks.insert(0, check_le(ratio(ours, peer, "wall"), ALIGNED_SLICE_WALL_RATIO, "{:.3f}×"))
    return ", ".join(targets), " · ".join(checks)


def ngshard_targets(ours: Side, peer: Side, peak_bound: int, wall_target: bool):
    """#8's targets: wall (the JPEG block only), CPU (the cost of any block) and peak memory."""
    wall, cpu = ratio(ours, peer, "wall"), ratio(ours, peer, "cpu")
    targets = (["wall ≤ 0.5×"] if wall_target else []) + ["CPU ≤ 0.5×", f"peak ≤ {peak_bound} MiB"]
    checks = ([check_le(wall, 0.5, "wall {:.2f}×")] if wall_target else []) + [
        check_le(cpu, 0.5, "CPU {:.2f}×"), check_le(ours.peak(), peak_bound, "{:.0f} MiB")]
    return ", ".join(targets), " · ".join(checks)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=Path, default=ROOT / "target" / "release",
                        help="where emwrite and examples/make_stack are (default: target/release)")
    parser.add_argument("--work", type=Path, help="inputs and outputs (default: target/bench[-quick])")
    parser.add_argument("--runs", type=int, help="runs per side (default 3, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 run, a 64-slice block")
    parser.add_argument("--scaling", action="store_true", help="also the scaling sweeps (item 8)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.work = args.work or ROOT / "target" / ("bench-quick" if args.quick else "bench")
    args.bin_dir = args.bin_dir.resolve()
    bench = Bench(args)
    for path in (bench.emwrite, bench.make_stack):
        if not path.exists():
            sys.exit(f"{path} is missing: cargo build --release --workspace --bins --examples (scripts/bench does)")
    slices = 64 if args.quick else 1024
    chosen = args.only or [s for s in SCENARIOS if s != "scaling" or args.scaling]
    table = Table()
    block = f"1024² × {slices} slices" if slices != 1024 else "1024³ block"

    if "ngshard" in chosen:
        for write_raw, bound in ((False, 256), (True, 512)):
            # auto: a JPEG block splits across the two cores, a block with raw does not.
            ours, peer = bench.ngshard_local(slices, write_raw)
            how = "JPEG + raw, whole" if write_raw else "JPEG, split in two halves (`--split auto`)"
            table.add(f"ngshard {block}, {how}, local disk", ours, peer,
                      *ngshard_targets(ours, peer, bound, wall_target=not write_raw))
        ours, _ = bench.ngshard_local(slices, True, split="always", with_peer=False)
        table.add(f"ngshard {block}, JPEG + raw, split in two halves (`--split always`), local disk (emwrite only)",
                  ours, Side(), "peak ≤ 512 MiB", check_le(ours.peak(), 512, "{:.0f} MiB"))
    if "serve" in chosen:
        served, run = bench.ngshard_serve(slices)
        table.add(f"ngshard {block}, JPEG, through `emwrite serve` (peer: `emwrite run`, both `--split auto`)",
                  served, run, "wall ≤ 1.05× run's", check_le(ratio(served, run, "wall"), 1.05, "{:.2f}×"))
    if "ngshard-gcs" in chosen:
        sides = bench.ngshard_gcs(slices)
        for delay, (ours, peer) in sides.items():
            conns = ours.median("connections")
            met = [check_le(conns, 16, "{:.0f} conns"), check_le(ours.peak(), 256, "{:.0f} MiB")]
            target = "≤ 16 connections per block, peak ≤ 256 MiB (split)"
            if delay:
                slowdown = ours.median("wall") / sides[0][0].median("wall") if ours.ok() and sides[0][0].ok() else None
                target = "wall ≤ 1.05× the 0 ms run, " + target
                met.insert(0, check_le(slowdown, 1.05, "{:.2f}× the 0 ms run"))
            table.add(f"ngshard {block}, JPEG, fake-gcs-server via proxy, {delay} ms first-byte delay", ours, peer,
                      target, " · ".join(met))
    if "alignedslice" in chosen:
        for size in (4096, 8192):
            ours, peer = bench.aligned_slice(size, size)
            table.add(f"alignedslice {size}², tile pack of 1024² tiles", ours, peer,
                      *aligned_slice_targets(ours, peer))
    if "cold-start" in chosen:
        fresh, warm, peer = bench.cold_start()
        table.add("cold start: `emwrite serve` to first answer (POST /ngmeta), empty wasmtime cache", fresh, Side())
        table.add("cold start, the cache left by that start (peer: `python -c 'import numpy, PIL, tensorstore'`, "
                  "the original's imports only)", warm, peer)

    header = (f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f}; median of {args.runs} run(s) per side, alternating; "
              f"peak = the process's max RSS (wait4)")
    report = [header, "", table.markdown()]
    if "scaling" in chosen:
        report += ["", scaling(bench, slices)]
    text = "\n".join(report)
    (args.work / "results.md").write_text(text + "\n")
    print(text)


def scaling(bench: "Bench", slices: int) -> str:
    """Item 8: time and memory against slice size and slices per block."""
    table = Table()
    # margin 0: the raw slices are the frame's size, 34432 × 39552 the hemibrain's (1.36 Gpx).
    for width, height, margin, with_peer in ((4096, 4096, 0, True), (8192, 8192, 0, True),
                                             (16384, 16384, 0, True), (34432, 39552, 0, False)):
        ours, peer = bench.aligned_slice(width, height, with_peer=with_peer, margin=margin)
        note = f", raw {width - margin} × {height - margin}" if margin else ""
        if not with_peer:
            note += " (peer not run: Pillow would hold both 1+ GB images and take minutes)"
        table.add(f"alignedslice {width} × {height}{note}", ours, peer, *aligned_slice_targets(ours, peer))
    data = bench.ngshard_inputs(slices)
    for n in (s for s in (64, 256, 1024) if s <= slices):
        requests = bench.ngshard_requests(data, slices, False, maxz=n - 1)
        ours, _ = bench.alternate(lambda: measure([bench.emwrite, "run", "ngshard", requests["ours"], "--data-dir",
                                                   data], log=bench.log), None)
        table.add(f"ngshard JPEG, {n} slices in the block (emwrite only)", ours, Side())
    return "Scaling (`--scaling`):\n\n" + table.markdown()


SCENARIOS = ["ngshard", "serve", "ngshard-gcs", "alignedslice", "cold-start", "scaling"]

if __name__ == "__main__":
    main()
