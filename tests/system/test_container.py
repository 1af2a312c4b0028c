"""The container image run as Cloud Run runs it, as a service and as a Job (docs/cloud-run.md).

The image is the one `scripts/image` builds; scripts/test passes its reference in EMWRITE_IMAGE.
Each container runs as Cloud Run runs one: host network, PORT set by the caller, a 2 GiB memory
cap, the image's own user and default command, GCS (here fake-gcs-server) through
STORAGE_EMULATOR_HOST. Without podman or EMWRITE_IMAGE the tests skip, saying why.
"""

import os
import resource
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from conftest import Server, free_port
from gcs import RETRY_BASE_MS, GateProxy, wait_for_port
from job import assert_same_objects, job_requests, prepare_buckets, run_job, written_objects
from test_gcs import upload_stack

IMAGE = os.environ.get("EMWRITE_IMAGE")
# Cloud Run's contract: SIGTERM, then SIGKILL 10 s later.
STOP_SECONDS = 10


def podman() -> list[str]:
    """podman, with runc where it is installed: Debian 12's default crun refuses hybrid cgroups."""
    path = shutil.which("podman")
    if path is None:
        pytest.skip("podman is not installed (Debian: apt-get install podman runc mmdebstrap); "
                    "scripts/test installs it")
    if not IMAGE:
        pytest.skip("EMWRITE_IMAGE is not set: scripts/test sets it to the image scripts/image builds")
    return [path, *(["--runtime", "runc"] if shutil.which("runc") else [])]


def run_flags(env: dict) -> list[str]:
    """`podman run` flags for a container as Cloud Run runs it, with `env` set inside."""
    # runc may lower rlimits but not raise them: 4096, or this process's own if lower.
    nofile = min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    nproc = min(4096, resource.getrlimit(resource.RLIMIT_NPROC)[0])
    flags = ["--rm", "--network", "host", "--memory", "2g",
             "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
    for key, value in env.items():
        flags += ["-e", f"{key}={value}"]
    return flags


class Service(Server):
    """The image's default command (`emwrite serve --store gcs ...`) in a container on PORT."""

    def __init__(self, workdir: Path, storage_url: str):
        self.podman = podman()
        self.name = f"emwrite-test-{uuid.uuid4().hex[:12]}"
        self.port = free_port()
        self.log_path = workdir / f"{self.name}.log"
        self.log = open(self.log_path, "w")
        env = {"PORT": self.port, "STORAGE_EMULATOR_HOST": storage_url, "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS}
        # Attached, so that this process's exit status is the container's.
        self.process = subprocess.Popen([*self.podman, "run", "--name", self.name, *run_flags(env), IMAGE],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)

    def exec(self, *args: str) -> str:
        return subprocess.run([*self.podman, "exec", self.name, *args], check=True, capture_output=True,
                              text=True).stdout

    def logs(self) -> str:
        return self.log_path.read_text()

    def stop(self):
        if self.process.poll() is None:
            subprocess.run([*self.podman, "stop", "-t", str(STOP_SECONDS), self.name], capture_output=True)
        self.process.wait()
        self.log.close()


def image_run(*args: str, env: dict) -> subprocess.CompletedProcess:
    """One run of the image with `args` replacing its default command, as a Cloud Run Job task."""
    return subprocess.run([*podman(), "run", *run_flags(env), IMAGE, *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def service(emulator, tmp_path_factory):
    podman()  # skips before anything starts
    service = Service(tmp_path_factory.mktemp("container-service"), emulator.url)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def service_objects(service, emulator, example_stack):
    """What the service wrote for the stack's requests."""
    return run_job(service, emulator, example_stack, "container-service")


def test_the_service_runs_as_a_non_root_user(service):
    assert service.exec("id", "-u").strip() != "0"
    assert service.exec("id", "-un").strip() == "emwrite"


def test_the_first_task_runs_the_precompiled_component(service, emulator, example_stack):
    # `serve` loads the component before it listens: a port that answers has it already.
    prepare_buckets(emulator, example_stack, "container-first")
    endpoint, body = job_requests(example_stack[1], "container-first")[0]
    assert service.post(endpoint, body) == (200, "success")
    # The code that ran is the image's precompiled file, mapped executable into the server
    # (PID 1); a component compiled at start-up would live in anonymous memory instead.
    maps = service.exec("cat", "/proc/1/maps").splitlines()
    executable = [line for line in maps if line.endswith(".cwasm") and line.split()[1].startswith("r-x")]
    assert executable and executable[0].split()[-1].startswith("/usr/local/bin/emwrite-"), maps
    logs = service.logs()
    assert "compiling instead" not in logs
    assert "component: precompiled /usr/local/bin/emwrite-" in logs, logs


def test_the_service_writes_what_the_native_host_writes(service_objects, native_objects):
    assert_same_objects(service_objects, native_objects)


def test_sigterm_during_an_ngshard_lets_it_answer_200_and_the_container_exits_0(
        emulator, example_stack, native_objects, tmp_path):
    gate = GateProxy(free_port(), emulator.port)
    service = Service(tmp_path, gate.url)
    stopper = None
    try:
        # Every request but the last ngshard as usual.
        prepare_buckets(emulator, example_stack, "container-sigterm")
        *before, (last_endpoint, last_body) = job_requests(example_stack[1], "container-sigterm")
        assert last_endpoint == "ngshard"
        for endpoint, body in before:
            assert service.post(endpoint, body) == (200, "success"), (endpoint, body)

        # The last ngshard's first storage call is held at the gate, so SIGTERM finds it running.
        gate.armed.set()
        answer = {}
        request = threading.Thread(target=lambda: answer.update(result=service.post(last_endpoint, last_body)))
        request.start()
        while not gate.reached.wait(0.05):
            assert request.is_alive(), f"the ngshard answered without reaching storage: {answer}"
        stopper = subprocess.Popen([*service.podman, "stop", "-t", str(STOP_SECONDS), service.name],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        while "shutting down:" not in service.logs():
            assert service.process.poll() is None, service.logs()
            threading.Event().wait(0.05)
        gate.released.set()
        request.join()
        assert answer["result"] == (200, "success"), service.logs()
        # SIGKILL after STOP_SECONDS would make the exit status 137.
        assert service.process.wait() == 0, service.logs()
        assert "every request finished" in service.logs()
    finally:
        gate.released.set()
        if stopper is not None:
            stopper.wait()
        service.stop()
        gate.stop()
    assert_same_objects(written_objects(emulator, "container-sigterm"), native_objects)


def test_the_image_as_a_cloud_run_job_writes_the_services_volume(emulator, example_stack, service_objects, tmp_path):
    data_dir, stack = example_stack
    stack_file = upload_stack(emulator, data_dir, stack, "container-job", "container-job-tmp")
    # A Job reads its stack file from GCS: it needs no volume.
    emulator.create_bucket("container-job-stacks")
    emulator.upload("container-job-stacks", "runs/stack.json", stack_file.read_bytes(), "application/json")
    stack_url = "gs://container-job-stacks/runs/stack.json"
    env = {"STORAGE_EMULATOR_HOST": emulator.url, "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS}
    for phase, count in (("align", 2), ("meta", 1), ("shard", 2)):
        for index in range(count):
            task_env = {**env, "CLOUD_RUN_TASK_INDEX": index, "CLOUD_RUN_TASK_COUNT": count}
            result = image_run("task", stack_url, "--phase", phase, env=task_env)
            assert result.returncode == 0, (phase, index, result.stderr)
    verify = image_run("verify", "gs://container-job", env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert ": complete: " in verify.stdout + verify.stderr

    assert_same_objects(written_objects(emulator, "container-job"), service_objects)
