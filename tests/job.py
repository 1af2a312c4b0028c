"""The job: a small stack's requests through all three endpoints, as the original's clients send
them, and the objects they leave in fake-gcs-server. Every host and deployment (native, jco,
wasmtime serve, the container image, Spin) is given this job and must write the same objects as
the native host (the `native_objects` fixture in conftest.py).
"""

import math

from gcs import RETRY_BASE_MS


def gcs_env(emulator) -> dict:
    """A host's environment for bare bucket names on the emulator."""
    return {"EMWRITE_STORE": "gcs", "STORAGE_EMULATOR_HOST": emulator.url, "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS}


def job_requests(stack: dict, bucket: str) -> list[tuple[str, dict]]:
    """Every request of the job, writing to `bucket` and `<bucket>-tmp`, in the original's loose
    forms (arrays as strings, numbers as strings, writeRaw "True")."""
    tmp = f"{bucket}-tmp"
    width, height = stack["bbox"]
    bbox = f"[{width}, {height}]"
    zs = [entry["z"] for entry in stack["slices"]]
    requests = [("alignedslice", {"img": entry["img"], "transform": "[" + " ".join(map(str, entry["transform"])) + "]",
                                  "bbox": bbox, "dest": bucket, "dest-tmp": tmp, "slice": str(entry["z"]),
                                  "shard-size": 1024})
                for entry in stack["slices"]]
    requests.append(("ngmeta", {"dest": bucket, "minz": min(zs), "maxz": max(zs), "shard-size": 1024,
                                "bbox": bbox, "writeRaw": "True"}))
    for bx in range(math.ceil(width / 1024)):
        for by in range(math.ceil(height / 1024)):
            requests.append(("ngshard", {"dest": bucket, "source": tmp, "start": [bx, by, 0], "shard-size": 1024,
                                         "minz": min(zs), "maxz": max(zs), "bbox": bbox, "writeRaw": "True"}))
    return requests


def prepare_buckets(emulator, stack_and_dir, bucket: str):
    """Fresh buckets `bucket` and `<bucket>-tmp`, with the stack's raw slices in the first."""
    data_dir, stack = stack_and_dir
    emulator.create_bucket(bucket)
    emulator.create_bucket(f"{bucket}-tmp")
    for entry in stack["slices"]:
        raw = (data_dir / stack["dest"] / "raw" / entry["img"]).read_bytes()
        emulator.upload(bucket, f"raw/{entry['img']}", raw, "image/png")


def written_objects(emulator, bucket: str) -> dict:
    """Every object the job wrote to `bucket` and `<bucket>-tmp`, by name within its bucket, as
    (content type, bytes)."""
    objects = {}
    for b, key in ((bucket, "dest"), (f"{bucket}-tmp", "tmp")):
        for name in emulator.list(b):
            if not name.startswith("raw/"):
                objects[f"{key}:{name}"] = (emulator.metadata(b, name)["contentType"], emulator.download(b, name))
    return objects


def run_job(server, emulator, stack_and_dir, bucket: str) -> dict:
    """Runs the job through `server` into fresh buckets; returns every object written."""
    prepare_buckets(emulator, stack_and_dir, bucket)
    for endpoint, body in job_requests(stack_and_dir[1], bucket):
        assert server.post(endpoint, body) == (200, "success"), (endpoint, body)
    return written_objects(emulator, bucket)


def assert_same_objects(ours: dict, reference: dict):
    assert sorted(ours) == sorted(reference)
    differing = [name for name in reference if ours[name] != reference[name]]
    assert not differing, f"objects that differ from the native host's: {differing}"
