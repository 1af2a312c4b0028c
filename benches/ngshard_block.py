"""Benchmark: one full 1024³ ngshard block, emwrite against tensorstore, time and peak memory.

Builds a 1024-slice, 1024×1024 example stack (make_stack + `emwrite pipeline`, not timed), then
times `emwrite run ngshard` on the block and the peer, `peers/tensorstore_block.py`, which does the
original service's job with tensorstore: read the same tile packs, build the block in numpy,
downsample, write the same sharded volume. Each runs as its own process; peak memory is that
process's maximum resident set (wait4). Prints a Markdown table for the README.

    .venv/bin/python benches/ngshard_block.py [--work DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMWRITE = ROOT / "target" / "release" / "emwrite"
MAKE_STACK = ROOT / "target" / "release" / "examples" / "make_stack"
PEER = ROOT / "benches" / "peers" / "tensorstore_block.py"


def measure(args, env=None):
    """Runs `args`, returns (seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    process = subprocess.Popen(args, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{args[0]} failed with {status}")
    return seconds, usage.ru_maxrss / 1024


def prepare(work: Path):
    data = work / "data"
    marker = data / "emdata" / "neuroglancer" / "jpeg" / "info"
    if marker.exists():
        return data
    subprocess.run([MAKE_STACK, "--data-dir", data, "--width", "1024", "--height", "1024", "--margin", "0",
                    "--minz", "0", "--slices", "1024"], check=True)
    subprocess.run([EMWRITE, "pipeline", data / "stack.json", "--data-dir", data], check=True)
    return data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=ROOT / "target" / "bench-ngshard")
    args = parser.parse_args()
    for path in (EMWRITE, MAKE_STACK):
        if not path.exists():
            sys.exit(f"{path} is missing: cargo build --release --bins --examples")
    data = prepare(args.work)
    rows = []
    for write_raw in (False, True):
        request = {"dest": "emdata", "source": "emdata-tmp", "start": [0, 0, 0], "shard-size": 1024,
                   "minz": 0, "maxz": 1023, "bbox": "[1024, 1024]", "writeRaw": str(write_raw)}
        request_file = args.work / f"ngshard-{write_raw}.json"
        request_file.write_text(json.dumps(request))
        ours = measure([str(EMWRITE), "run", "ngshard", str(request_file), "--data-dir", str(data)])
        peer_out = args.work / f"peer-{write_raw}"
        peer = measure([sys.executable, str(PEER), str(data / "emdata-tmp"), str(peer_out),
                        "--write-raw" if write_raw else "--jpeg-only"])
        rows.append((write_raw, ours, peer))

    print("| one 1024³ ngshard block | emwrite (component, 1 thread) | tensorstore (original's way) | time ratio |")
    print("| --- | --- | --- | --- |")
    for write_raw, (ours_s, ours_mib), (peer_s, peer_mib) in rows:
        what = "JPEG + raw" if write_raw else "JPEG"
        print(f"| {what} | {ours_s:.1f} s, peak {ours_mib:.0f} MiB | {peer_s:.1f} s, peak {peer_mib:.0f} MiB "
              f"| {peer_s / ours_s:.2f}× |")


if __name__ == "__main__":
    main()
