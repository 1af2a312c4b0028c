"""Resume, verify and status on real processes: a rerun redoes only what is not finished, `verify`
names a deleted and a truncated shard with the block to redo, and a pipeline killed with SIGKILL
mid-run picks up where it stopped and ends with the volume a fresh run writes.

"Finished" is judged from storage alone (docs/design.md §4, "Finished tasks"): aligned PNG and
tile pack for a slice, the info for ngmeta, the block manifest and the shards it lists for a block.
Modification times show which objects a rerun rewrote.
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import generate_stack, run_emwrite
from gcs import RETRY_BASE_MS
from test_gcs import upload_stack


def outputs(data_dir: Path) -> dict[str, int]:
    """Every object under the data directory, by path, with its modification time in ns; the
    hidden temporary files of cut-short writes are not objects."""
    return {
        str(p.relative_to(data_dir)): p.stat().st_mtime_ns
        for p in sorted(data_dir.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name != "stack.json"
    }


def volume_bytes(data_dir: Path, dest: str) -> dict[str, bytes]:
    root = data_dir / dest / "neuroglancer"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def manifest(data_dir: Path, dest: str, block: str) -> dict:
    return json.loads((data_dir / dest / "neuroglancer" / "blocks" / f"{block}.json").read_text())


def block_outputs(data_dir: Path, dest: str, block: str) -> list[str]:
    """The objects of a block, as `outputs` names them: its shards and its manifest."""
    listed = [f"{dest}/{o['name']}" for o in manifest(data_dir, dest, block)["objects"]]
    return listed + [f"{dest}/neuroglancer/blocks/{block}.json"]


def pipeline(emwrite, data_dir: Path, *extra: str, check: bool = True):
    return run_emwrite(emwrite, "pipeline", str(data_dir / "stack.json"), "--data-dir", str(data_dir),
                       *extra, check=check)


def test_verify_names_broken_shards_and_a_rerun_redoes_only_their_blocks(emwrite, make_stack, tmp_path):
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data)  # 1300 × 1100 frame: blocks (0..1, 0..1, 0)
    dest = stack["dest"]
    first = pipeline(emwrite, data)
    assert "verify emdata: complete: 4 blocks" in first.stderr, first.stderr
    verified = run_emwrite(emwrite, "verify", str(data / dest))
    assert verified.stdout.startswith("verify "), verified.stdout
    assert "complete: 4 blocks" in verified.stdout
    # A bucket name with --data-dir names the same volume.
    run_emwrite(emwrite, "verify", dest, "--data-dir", str(data))
    status = run_emwrite(emwrite, "status", str(data / "stack.json"), "--data-dir", str(data)).stdout
    assert status.splitlines() == ["slices 40/40 finished", "meta   1/1 finished", "blocks 4/4 finished"]

    before = outputs(data)
    deleted = manifest(data, dest, "1_0_0")["objects"][0]["name"]
    truncated = manifest(data, dest, "0_1_0")["objects"][-1]["name"]
    original = {name: (data / dest / name).read_bytes() for name in (deleted, truncated)}
    (data / dest / deleted).unlink()
    with open(data / dest / truncated, "r+b") as f:
        f.truncate(len(original[truncated]) // 2)

    broken = run_emwrite(emwrite, "verify", str(data / dest), check=False)
    assert broken.returncode != 0
    lines = broken.stdout.splitlines()
    assert f"block (1, 0, 0): {deleted}: missing" in lines, broken.stdout
    assert any(line.startswith(f"block (0, 1, 0): {truncated}: ") for line in lines), broken.stdout
    assert lines[-1].startswith("verify ") and "incomplete: 2 of 4 blocks to redo" in lines[-1], lines
    status = run_emwrite(emwrite, "status", str(data / "stack.json"), "--data-dir", str(data)).stdout
    assert "blocks 2/4 finished; missing: block (1, 0, 0), block (0, 1, 0)" in status, status

    rerun = pipeline(emwrite, data)
    assert "align: 40 tasks already finished, skipped" in rerun.stderr, rerun.stderr
    assert "meta: 1 tasks already finished, skipped" in rerun.stderr, rerun.stderr
    assert "shard: 2 tasks already finished, skipped" in rerun.stderr, rerun.stderr
    assert "shard: 4/4 blocks (2 already done)" in rerun.stderr, rerun.stderr
    assert "summary: 2 tasks (43 already done)" in rerun.stderr, rerun.stderr
    after = outputs(data)
    assert after.keys() == before.keys()
    redone = set(block_outputs(data, dest, "1_0_0") + block_outputs(data, dest, "0_1_0"))
    for path, mtime in before.items():
        if path in redone:
            assert after[path] != mtime, f"{path} was not rewritten"
        else:
            assert after[path] == mtime, f"{path} was rewritten, but its task was finished"
    for name, bytes_ in original.items():
        assert (data / dest / name).read_bytes() == bytes_, name
    run_emwrite(emwrite, "verify", str(data / dest))

    # --force redoes everything.
    forced = pipeline(emwrite, data, "--force")
    assert "already finished" not in forced.stderr, forced.stderr
    assert all(t != before[p] for p, t in outputs(data).items() if p in before and p.startswith(f"{dest}/neuroglancer/jpeg/8.0"))


def test_a_killed_pipeline_resumes_without_redoing_finished_tasks(emwrite, make_stack, tmp_path):
    # 9 blocks (3 × 3 in x and y): several seconds of ngshard on two cores.
    options = dict(width=2900, height=2000, margin=100, slices=24, minz=5, write_raw=False)
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data, **options)
    dest = stack["dest"]
    blocks_dir = data / dest / "neuroglancer" / "blocks"

    driver = subprocess.Popen([str(emwrite), "pipeline", str(data / "stack.json"), "--data-dir", str(data)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Poll storage for the first finished block, its manifest: not the hidden temporary file the
    # manifest is written to before its rename, which would kill the run before any block had
    # finished. No fixed sleep decides when to kill.
    while not (blocks_dir.is_dir() and any(blocks_dir.glob("[!.]*.json"))):
        assert driver.poll() is None, f"the pipeline ended before any block finished:\n{driver.stderr.read()}"
        time.sleep(0.01)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    driver.stderr.close()
    assert driver.returncode == -signal.SIGKILL

    finished_blocks = sorted(p.stem for p in blocks_dir.glob("[!.]*.json"))
    assert 1 <= len(finished_blocks) < 9, finished_blocks
    killed = outputs(data)
    status = run_emwrite(emwrite, "status", str(data / "stack.json"), "--data-dir", str(data)).stdout
    assert f"blocks {len(finished_blocks)}/9 finished" in status, status
    assert "slices 24/24 finished" in status and "meta   1/1 finished" in status, status
    assert run_emwrite(emwrite, "verify", str(data / dest), check=False).returncode != 0

    resumed = pipeline(emwrite, data)
    assert "align: 24 tasks already finished, skipped" in resumed.stderr, resumed.stderr
    assert f"shard: {len(finished_blocks)} tasks already finished, skipped" in resumed.stderr, resumed.stderr
    assert f"shard: 9/9 blocks ({len(finished_blocks)} already done)" in resumed.stderr, resumed.stderr
    after = outputs(data)
    kept = [p for p in killed if not p.startswith(f"{dest}/neuroglancer/") or
            any(p in block_outputs(data, dest, b) for b in finished_blocks)]
    assert any(p.startswith(f"{dest}/align/") for p in kept) and any(".shard" in p for p in kept)
    for path in kept:
        assert after[path] == killed[path], f"{path} was rewritten, but its task had finished"
    run_emwrite(emwrite, "verify", str(data / dest))
    status = run_emwrite(emwrite, "status", str(data / "stack.json"), "--data-dir", str(data)).stdout
    assert "blocks 9/9 finished" in status, status

    # A fresh, uninterrupted run of the same stack writes the same volume, byte for byte.
    fresh = tmp_path / "fresh"
    generate_stack(make_stack, fresh, **options)
    pipeline(emwrite, fresh)
    resumed_volume, fresh_volume = volume_bytes(data, dest), volume_bytes(fresh, dest)
    assert resumed_volume.keys() == fresh_volume.keys()
    assert len([n for n in fresh_volume if n.endswith(".shard")]) > 9
    for name, bytes_ in fresh_volume.items():
        assert resumed_volume[name] == bytes_, name
    assert not re.search(r"ERROR", resumed.stderr), resumed.stderr


def test_resume_and_verify_on_gcs(emwrite, make_stack, emulator, tmp_path):
    """The same on fake-gcs-server: the host reads GCS itself (object metadata for sizes) to skip
    finished tasks and to verify; a deleted shard is named and only its block is redone."""
    stack = generate_stack(make_stack, tmp_path, width=1900, height=200, margin=100, slices=6, minz=2)
    stack_file = upload_stack(emulator, tmp_path, stack, "resume", "resume-tmp")
    env = {"STORAGE_EMULATOR_HOST": emulator.url, "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS}
    emwrite_gcs = lambda *args, check=True: run_emwrite(emwrite, *args, "--data-dir", str(tmp_path / "unused"),
                                                        check=check, env=env)
    first = emwrite_gcs("pipeline", str(stack_file))
    assert "verify gs://resume: complete: 2 blocks" in first.stderr, first.stderr
    emwrite_gcs("verify", "gs://resume")
    generations = {name: emulator.metadata("resume", name)["generation"] for name in emulator.list("resume")}

    listed = json.loads(emulator.download("resume", "neuroglancer/blocks/1_0_0.json"))["objects"]
    deleted = listed[0]["name"]
    emulator.delete("resume", deleted)
    broken = emwrite_gcs("verify", "gs://resume", check=False)
    assert broken.returncode != 0
    assert f"block (1, 0, 0): {deleted}: missing" in broken.stdout.splitlines(), broken.stdout
    status = emwrite_gcs("status", str(stack_file)).stdout
    assert "slices 6/6 finished" in status and "blocks 1/2 finished; missing: block (1, 0, 0)" in status, status

    # fake-gcs-server keeps an object's generation when a compose overwrites it (real GCS makes a
    # new one), and large shards are composed: so the block's other objects are overwritten with
    # junk first, and the rerun must put back each one's bytes.
    redone = {o["name"] for o in listed} | {"neuroglancer/blocks/1_0_0.json"}
    before = {name: emulator.download("resume", name) for name in redone if name != deleted}
    for name in before:
        emulator.upload("resume", name, b"junk")
    generations.update({name: emulator.metadata("resume", name)["generation"] for name in before})

    rerun = emwrite_gcs("pipeline", str(stack_file))
    assert "align: 6 tasks already finished, skipped" in rerun.stderr, rerun.stderr
    assert "shard: 1 tasks already finished, skipped" in rerun.stderr, rerun.stderr
    for name, bytes_before in before.items():
        assert emulator.download("resume", name) == bytes_before, name
    for name, generation in generations.items():
        if name not in redone:
            assert emulator.metadata("resume", name)["generation"] == generation, name
    emwrite_gcs("verify", "gs://resume")


def test_remote_runs_on_gcs_skip_finished_tasks_and_verify(emwrite, make_stack, emulator, tmp_path):
    """With --endpoint and every location on GCS, the driver sees what the service wrote: a rerun
    skips the finished tasks (it sends nothing for them) and the run ends with verify."""
    from conftest import Server

    stack = generate_stack(make_stack, tmp_path, width=1100, height=150, margin=60, slices=5, minz=1)
    stack_file = upload_stack(emulator, tmp_path, stack, "remote", "remote-tmp")
    env = {"STORAGE_EMULATOR_HOST": emulator.url, "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS}
    (tmp_path / "unused").mkdir()
    server = Server(emwrite, tmp_path / "unused", "--store", "gcs", env=env)
    try:
        endpoint = f"http://127.0.0.1:{server.port}"
        drive = lambda *flags: run_emwrite(emwrite, "pipeline", str(stack_file), "--endpoint", endpoint,
                                           "--ramp-start", "0", *flags, env=env)
        first = drive()
        assert "verify gs://remote: complete" in first.stderr, first.stderr
        generations = {name: emulator.metadata("remote", name)["generation"] for name in emulator.list("remote")}

        rerun = drive()
        for phase, count in (("align", 5), ("meta", 1), ("shard", 2)):
            assert f"{phase}: {count} tasks already finished, skipped" in rerun.stderr, rerun.stderr
        assert "verify gs://remote: complete" in rerun.stderr, rerun.stderr
        for name, generation in generations.items():
            assert emulator.metadata("remote", name)["generation"] == generation, name

        # --force sends every task again.
        forced = drive("--force")
        assert "already finished" not in forced.stderr, forced.stderr
    finally:
        server.stop()
