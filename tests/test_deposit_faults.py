"""Deposits under faults: the connection dropped mid-upload, data corrupted on the way, the process
killed mid-deposit, failures that must not be retried.  All against real components: a TCP proxy on
loopback between boto3 and the S3 server, real subprocesses killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import ocfl
import pytest

from pipeline.deposit import deposit_bag, open_target
from pipeline.deposit.base import bag_expectations
from pipeline.deposit.ocfl import object_id_of
from pipeline.deposit.filesystem import WORK_DIR
from pipeline.deposit.replication import RetryPolicy
from pipeline.errors import DepositError, DepositMismatchError, RetryableDepositError

FAST = RetryPolicy(attempts=3, first_delay=0.05, max_delay=0.2)


class FaultyProxy:
    """A loopback TCP proxy to the S3 server that cuts or corrupts what the client sends.

    ``cut_after``: close a connection once that many bytes went upstream on it (for the first
    ``cut_times`` connections that get that far).  ``replace``: (old, new) bytes substituted in
    what the client sends (same length, so the request stays well-formed).
    """

    def __init__(self, upstream: str, *, cut_after: int | None = None, cut_times: int = 10**9,
                 replace: tuple[bytes, bytes] | None = None) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.cut_after, self.cut_times, self.replace = cut_after, cut_times, replace
        self.cuts = self.replaced = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump_back, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        sent = 0
        try:
            while data := client.recv(65536):
                if self.replace and self.replace[0] in data:
                    data = data.replace(*self.replace)
                    with self.lock:
                        self.replaced += 1
                if self.cut_after is not None and sent + len(data) > self.cut_after and self._take_cut():
                    upstream.sendall(data[: max(0, self.cut_after - sent)])
                    break
                upstream.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (client, upstream):
            _close(s)

    def _take_cut(self) -> bool:
        with self.lock:
            if self.cuts >= self.cut_times:
                return False
            self.cuts += 1
            return True

    @staticmethod
    def _pump_back(upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        for s in (client, upstream):
            _close(s)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[Callable[..., FaultyProxy]]:
    made: list[FaultyProxy] = []

    def make(**kwargs: Any) -> FaultyProxy:
        made.append(FaultyProxy(moto_endpoint, **kwargs))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _open_uploads(endpoint: str, bucket: str) -> list[Any]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


# --------------------------------------------------------------------------- the network


def test_a_connection_dropped_mid_upload_is_retried_and_the_deposit_completes(
        make_bag: Any, moto_endpoint: str, s3_bucket: str, proxy: Callable[..., FaultyProxy]) -> None:
    bag = make_bag("rec", files={"big.bin": os.urandom(3 << 20), "small.txt": b"s\n"})
    cutter = proxy(cut_after=1 << 20, cut_times=1)
    result = deposit_bag(bag, f"s3://{s3_bucket}/p?endpoint={cutter.url}", retry=FAST)
    assert cutter.cuts == 1
    assert result.outcome == "deposited" and result.verified
    direct = open_target(f"s3://{s3_bucket}/p?endpoint={moto_endpoint}")
    assert direct.verify("rec.v1", bag_expectations(bag)) == []


def test_a_connection_that_keeps_dropping_fails_retryably_leaves_no_bag_and_the_next_run_resumes(
        make_bag: Any, moto_endpoint: str, s3_bucket: str, proxy: Callable[..., FaultyProxy]) -> None:
    bag = make_bag("rec", files={"big.bin": os.urandom(1 << 20), "small.txt": b"s\n"})
    cutter = proxy(cut_after=256 << 10)
    waits: list[float] = []
    with pytest.raises(RetryableDepositError):
        deposit_bag(bag, f"s3://{s3_bucket}/p?endpoint={cutter.url}", retry=FAST, sleep=waits.append)
    assert len(waits) == FAST.attempts - 1  # retried, with a backoff before each new attempt
    direct = open_target(f"s3://{s3_bucket}/p?endpoint={moto_endpoint}")
    assert direct.locate("rec.v1") is None and direct.list() == []
    assert direct.put(bag).outcome == "deposited"
    assert direct.verify("rec.v1", bag_expectations(bag)) == []
    assert _open_uploads(moto_endpoint, s3_bucket) == []


def test_a_resumed_deposit_does_not_send_objects_already_there_intact(
        make_bag: Any, moto_endpoint: str, s3_bucket: str, proxy: Callable[..., FaultyProxy]) -> None:
    bag = make_bag("rec", files={"big.bin": os.urandom(1 << 20), "small.txt": b"s\n"})
    direct = open_target(f"s3://{s3_bucket}/p?endpoint={moto_endpoint}")
    direct.put(bag)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.delete_object(Bucket=s3_bucket, Key="p/.strongroom/rec.v1.complete.json")  # as if killed before it
    # Through a proxy that cuts any connection carrying more than 256 KiB upstream: the deposit can
    # only complete if it does not send the 1 MiB object again (reading it back goes downstream).
    cutter = proxy(cut_after=256 << 10)
    result = deposit_bag(bag, f"s3://{s3_bucket}/p?endpoint={cutter.url}", retry=FAST)
    assert result.outcome == "deposited" and cutter.cuts == 0
    assert direct.locate("rec.v1") is not None


def test_an_unreachable_endpoint_is_retried_then_reported_as_retryable(make_bag: Any, moto_endpoint: str) -> None:
    # (moto_endpoint only for its fake credentials: this deposit never reaches it)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    with pytest.raises(RetryableDepositError, match="connection failed"):
        deposit_bag(make_bag("rec"), f"s3://bucket?endpoint=http://127.0.0.1:{port}", retry=FAST,
                    sleep=waits.append)
    assert len(waits) == FAST.attempts - 1


def test_a_refusal_is_not_retried(make_bag: Any, moto_endpoint: str) -> None:
    waits: list[float] = []
    with pytest.raises(DepositError) as caught:
        deposit_bag(make_bag("rec"), f"s3://no-such-bucket-here?endpoint={moto_endpoint}", retry=FAST,
                    sleep=waits.append)
    assert not isinstance(caught.value, RetryableDepositError)
    assert "NoSuchBucket" in str(caught.value) and waits == []


def test_data_corrupted_on_the_way_fails_verification_and_publishes_nothing(
        make_bag: Any, moto_endpoint: str, s3_bucket: str, proxy: Callable[..., FaultyProxy]) -> None:
    bag = make_bag("rec", files={"victim.txt": b"intact CORRUPTME-CORRUPTME text\n"})
    corrupter = proxy(replace=(b"CORRUPTME-CORRUPTME", b"CORRUPTED-CORRUPTED"))
    with pytest.raises(DepositMismatchError) as caught:
        deposit_bag(bag, f"s3://{s3_bucket}?endpoint={corrupter.url}", retry=FAST)
    assert corrupter.replaced >= 1
    assert [(f.code, f.path) for f in caught.value.findings] == [("DEP004", "data/victim.txt")] * len(
        caught.value.findings)
    direct = open_target(f"s3://{s3_bucket}?endpoint={moto_endpoint}")
    assert direct.locate("rec.v1") is None  # never marked complete
    assert direct.put(bag).outcome == "deposited"  # the damaged object was removed, so it is sent again
    assert direct.verify("rec.v1", bag_expectations(bag)) == []


# --------------------------------------------------------------------------- the process killed

_DEPOSIT = "import sys; from pathlib import Path; from pipeline.deposit import open_target; " \
           "open_target(sys.argv[1]).put(Path(sys.argv[2]))"


def _many_files(n: int = 300, size: int = 32 << 10) -> dict[str, bytes]:
    return {f"part/{i:04d}.bin": os.urandom(size) for i in range(n)}


def _kill_when(url: str, bag: Path, started: Callable[[], bool]) -> None:
    """Run a deposit in a subprocess and SIGKILL it as soon as ``started()`` sees it half done."""
    proc = subprocess.Popen([sys.executable, "-c", _DEPOSIT, url, str(bag)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not started():
        assert proc.poll() is None, f"the deposit ended before it could be killed: {proc.stderr.read()!r}"
        assert time.monotonic() < deadline, "the deposit never started"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_killed_filesystem_deposit_is_rolled_back_by_the_next(make_bag: Any, tmp_path: Path) -> None:
    bag = make_bag("big", files=_many_files())
    store = tmp_path / "store"
    url = store.as_uri() + "?create=1"
    _kill_when(url, bag, lambda: any(p.is_dir() for p in (store / WORK_DIR).glob("*.partial/data/part")))
    target = open_target(url)
    assert target.locate("big.v1") is None and not (store / "big.v1").exists()
    assert target.put(bag).outcome == "deposited"
    assert list((store / WORK_DIR).glob("*.partial")) == []
    assert target.verify("big.v1", bag_expectations(bag)) == []


@pytest.mark.slow
def test_killed_ocfl_deposit_of_a_second_version_is_rolled_back_by_the_next(make_bag: Any, tmp_path: Path) -> None:
    from tests.test_deposit_ocfl import assert_valid_root

    v1 = make_bag("big", 1, {"first.txt": b"one\n"})
    v2 = make_bag("big", 2, _many_files())
    root = tmp_path / "ocfl"
    url = f"ocfl://{root}?create=1"
    open_target(url).put(v1)
    staging = root / "extensions" / "strongroom-staging"
    _kill_when(url, v2, lambda: any(staging.glob("*/v2/content/data/part/*")))
    assert open_target(url).locate("big.v2") is None
    assert_valid_root_or_staging_only(root)
    assert open_target(url).put(v2).outcome == "deposited"
    assert not staging.exists()
    assert_valid_root(root, objects=1)


def assert_valid_root_or_staging_only(root: Path) -> None:
    """After the kill the object itself is still valid at v1 (only the staging area holds debris)."""
    objdir = root / ocfl.StorageRoot(root=str(root)).object_path(object_id_of("big"))
    assert ocfl.Object(path=str(objdir)).parse_inventory().version_directories == ["v1"]
    from ocfl.validator import Validator

    assert Validator(check_digests=True).validate_object(str(objdir))


@pytest.mark.slow
def test_killed_s3_deposit_is_resumed_by_the_next(make_bag: Any, moto_endpoint: str, s3_bucket: str) -> None:
    bag = make_bag("big", files=_many_files(80, 8 << 10))
    url = f"s3://{s3_bucket}/p?endpoint={moto_endpoint}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")

    def some_uploaded() -> bool:
        return client.list_objects_v2(Bucket=s3_bucket, Prefix="p/big.v1/").get("KeyCount", 0) >= 5

    _kill_when(url, bag, some_uploaded)
    lease = "p/.strongroom/big.v1.lease.json"
    assert client.head_object(Bucket=s3_bucket, Key=lease)  # the dead deposit's lease is still there
    target = open_target(url)
    assert target.locate("big.v1") is None and target.list() == []
    assert target.put(bag).outcome == "deposited"  # its holder, on this machine, is dead: taken over at once
    assert target.verify("big.v1", bag_expectations(bag)) == []
    assert client.list_objects_v2(Bucket=s3_bucket, Prefix=lease).get("KeyCount", 0) == 0
