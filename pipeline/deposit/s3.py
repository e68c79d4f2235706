"""``s3://bucket/prefix?endpoint=http://host:port``: S3-compatible object storage, through boto3.

Layout under ``prefix`` for a bag ``rec.v1``:

* ``rec.v1/<path in bag>`` - one object per file of the bag (the default), or
* ``rec.v1.tar`` - the whole bag as one tar (``?serialization=tar``; RFC 8493 serialisation, the
  bag's name as single top directory) for stores that want one object per bag;
* ``.strongroom/rec.v1.complete.json`` - the completion marker, written last, only after every
  object was read back and matched the bag's manifests.  A bag without its marker is not a bag:
  ``list`` and ``locate`` ignore it and the next deposit of that name resumes it.
* ``.strongroom/rec.v1.lease.json`` - while a deposit of ``rec.v1`` runs: who holds the name and
  until when.  Deposits from several processes or machines (Dask workers, two ``strongroom
  deposit`` runs) would otherwise upload, discard and mark the same keys at once.  The lease is
  created with a conditional write (``If-None-Match: *``), renewed every third of its length
  (``If-Match`` on its ETag; a deposit that loses it stops before writing the marker), taken
  over once it has run out, or at once when its holder was a process of this machine that no
  longer runs (a killed deposit), and deleted at the end.  A deposit that finds a live lease
  fails with a retryable error.  Stores that ignore conditional writes (S3 has honoured them
  since 2024) get no such protection.

Every object is sent with its SHA-256 (``ChecksumSHA256``) so a store that checks it refuses
damaged bodies; files from ``multipart_threshold`` up go in parts of ``part_size`` (each with its
own SHA-256; memory use is one part).  Verification does not trust the store's word: the moto
server, for one, accepts a wrong checksum and echoes it back, so every object is read back and
re-hashed.  Credentials come from boto3's usual chain (environment, ``~/.aws`` files, instance
roles); they are never part of a URL, a message or a report.

Query parameters: ``endpoint``, ``region``, ``serialization`` (``none``/``tar``),
``multipart_threshold`` and ``part_size`` (bytes; parts at least 5 MiB, as S3 requires),
``max_concurrency`` (parallel bag deposits into this target, default 4), ``lease`` (seconds a
deposit's lease lasts unrenewed, default 300).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError, ClientError, HTTPClientError, IncompleteReadError, NoCredentialsError, SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from pipeline import SOFTWARE_NAME, __version__
from pipeline.deposit.base import (
    DIGEST, EXTRA, SIZE, DepositResult, already_held, Fixity, Target, algorithms_of, bag_expectations, bag_files,
    bag_identity, compare, digest_reader, mismatch, os_errors, redact, result_counts,
)
from pipeline.deposit.serialize import TAR_MEDIA_TYPE, tar_fixity, write_tar
from pipeline.errors import DepositError, RetryableDepositError, UsageError
from pipeline.findings import Finding
from pipeline.fixity import digest_file

MIB = 1 << 20
MIN_PART = 5 * MIB  # S3's minimum for every part but the last
MARKERS = ".strongroom"
_PARAMS = {"endpoint", "region", "serialization", "multipart_threshold", "part_size", "max_concurrency", "lease"}
#: Seconds a deposit's lease on a bag name lasts without renewal (renewed every third of that).
LEASE_SECONDS = 300
# Server answers that mean "try again later"; anything else is a real refusal.
_RETRYABLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
                    "InternalError", "ServiceUnavailable", "500", "502", "503", "504"}


class S3Target(Target):
    """Bags kept as objects under one prefix of one bucket."""

    scheme = "s3"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - _PARAMS
        if unknown or parts.fragment or len(parts.netloc) < 3:
            raise UsageError(f"'{redact(url)}': use s3://bucket[/prefix][?endpoint=URL&region=R&serialization=tar]"
                             + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
        self.bucket = parts.netloc
        self.prefix = unquote(parts.path).strip("/")
        self.endpoint = query.get("endpoint")
        endpoint = urlsplit(self.endpoint or "https://s3.amazonaws.com")
        if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            raise UsageError(f"'{redact(url)}': endpoint must be an http:// or https:// URL with a host")
        self.region = query.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.serialization = query.get("serialization", "none")
        if self.serialization not in ("none", "tar"):
            raise UsageError(f"'{redact(url)}': serialization must be 'none' or 'tar'")
        self.part_size = max(MIN_PART, _int(query, "part_size", 8 * MIB, url))
        self.threshold = max(self.part_size, _int(query, "multipart_threshold", 64 * MIB, url))
        self.max_concurrency = max(1, _int(query, "max_concurrency", 4, url))
        self.lease_seconds = max(1, _int(query, "lease", LEASE_SECONDS, url))
        self._client: Any = None
        super().__init__(f"s3://{self.bucket}/{self.prefix}" + (f"?{parts.query}" if parts.query else ""))

    # -- Target

    def put(self, bag: Path) -> DepositResult:
        with os_errors(str(bag)):  # the only files opened here are the bag's own
            return self._put(bag)

    def _put(self, bag: Path) -> DepositResult:
        name, identifier = bag_identity(bag)
        expected = bag_expectations(bag)
        if self._has_marker(name):
            return self._already_held(name, expected)
        with _Lease(self, name) as lease:
            if self._has_marker(name):  # another deposit finished between the look and the lease
                return self._already_held(name, expected)
            if self.serialization == "tar":
                self._upload_tar(bag, name)
            else:
                self._upload_files(bag, name)
            findings = compare(self._read_fixity(name, algorithms_of(expected)), expected)
            lease.check()
            if findings:
                self._discard(name, findings)  # so the next run uploads them again
                raise mismatch(self._location(name), findings,
                               "the copy read back does not match the bag's manifests")
            self._write_marker(name, identifier, expected)
        files, octets = result_counts(expected)
        return DepositResult(bag=name, outcome="deposited", location=self._location(name), files=files,
                             bytes=octets, verified=True,
                             detail="one tar object" if self.serialization == "tar" else "")

    def locate(self, bag_name: str) -> str | None:
        return self._location(bag_name) if self._has_marker(bag_name) else None

    def list(self) -> list[str]:
        suffix = ".complete.json"
        keys = self._keys(self._key(MARKERS) + "/")
        return sorted(k.rsplit("/", 1)[1][: -len(suffix)] for k in keys if k.endswith(suffix))

    def fixity(self, bag_name: str, algorithms: Sequence[str]) -> Fixity:
        if not self._has_marker(bag_name):
            raise DepositError(f"{redact(self.url)}: holds no complete bag named {bag_name}")
        return self._read_fixity(bag_name, algorithms)

    # -- names

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _marker_key(self, name: str) -> str:
        return self._key(MARKERS, f"{name}.complete.json")

    def _lease_key(self, name: str) -> str:
        return self._key(MARKERS, f"{name}.lease.json")

    def _location(self, name: str) -> str:
        from pipeline.deposit import location_of

        return location_of(self.url, name)

    # -- uploading

    def _upload_files(self, bag: Path, name: str) -> None:
        """Upload every file not already there intact; remove what does not belong (resume/roll back)."""
        base = self._key(name) + "/"
        existing = self._keys(base)
        self._abort_uploads(base)
        wanted: set[str] = set()
        for rel, path in bag_files(bag):
            key = base + rel
            wanted.add(key)
            size, digests = digest_file(path, ["sha256"])
            checksum = base64.b64encode(bytes.fromhex(digests["sha256"])).decode()
            if existing.get(key) == size and self._stored_sha256(key) == checksum:
                continue  # uploaded by an interrupted run; the read-back verification still checks it
            self._upload(key, path, size, checksum)
        for stray in sorted(existing.keys() - wanted):
            with self._errors(f"removing stray object {stray}"):
                self.client.delete_object(Bucket=self.bucket, Key=stray)

    def _upload(self, key: str, path: Path, size: int, checksum: str) -> None:
        if size >= self.threshold:
            with open(path, "rb") as fh, _Multipart(self, key) as upload:
                while block := fh.read(self.part_size):
                    upload.send(block)
            return
        with open(path, "rb") as fh, self._errors(f"uploading {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=fh, ContentLength=size,
                                   ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)

    def _upload_tar(self, bag: Path, name: str) -> None:
        key = self._key(f"{name}.tar")
        self._abort_uploads(key)
        with _Multipart(self, key, content_type=TAR_MEDIA_TYPE) as upload:
            writer = _PartWriter(upload, self.part_size)
            write_tar(bag, writer, name)
            writer.close()  # tarfile leaves a stream it was given open; the last part goes now

    def _write_marker(self, name: str, identifier: str, expected: Fixity) -> None:
        files, octets = result_counts(expected)
        body = json.dumps({
            "bag": name, "external_identifier": identifier, "serialization": self.serialization,
            "files": files, "bytes": octets, "verified": "every object read back and re-hashed",
            "deposited_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "software": f"{SOFTWARE_NAME} {__version__}",
        }, indent=2).encode()
        checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
        with self._errors(f"writing the completion marker of {name}"):
            self.client.put_object(Bucket=self.bucket, Key=self._marker_key(name), Body=body,
                                   ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                                   ContentType="application/json")

    def _discard(self, name: str, findings: Sequence[Finding]) -> None:
        """Delete objects that failed verification (never marked complete, so never a bag)."""
        if self.serialization == "tar":
            keys = [self._key(f"{name}.tar")]
        else:
            keys = sorted({self._key(name, f.path) for f in findings if f.code in (SIZE, DIGEST, EXTRA)})
        for key in keys:
            with self._errors(f"removing damaged object {key}"):
                self.client.delete_object(Bucket=self.bucket, Key=key)

    # -- reading back

    def _already_held(self, name: str, expected: Fixity) -> DepositResult:
        findings = compare(self._read_fixity(name, algorithms_of(expected)), expected)
        return already_held(name, self._location(name), findings, expected)

    def _read_fixity(self, name: str, algorithms: Sequence[str]) -> Fixity:
        if self.serialization == "tar":
            with self._errors(f"reading back {name}.tar"):
                body = self.client.get_object(Bucket=self.bucket, Key=self._key(f"{name}.tar"))["Body"]
                try:
                    return tar_fixity(body, name, algorithms)
                finally:
                    body.close()
        base = self._key(name) + "/"
        result: Fixity = {}
        for key in sorted(self._keys(base)):
            with self._errors(f"reading back {key}"):
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
                try:
                    result[key[len(base):]] = digest_reader(body.read, algorithms)
                finally:
                    body.close()
        return result

    def _keys(self, prefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        with self._errors(f"listing {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                found.update((o["Key"], int(o["Size"])) for o in page.get("Contents", []))
        return found

    def _has_marker(self, name: str) -> bool:
        try:
            with self._errors(f"looking for {name}"):
                self.client.head_object(Bucket=self.bucket, Key=self._marker_key(name))
        except _NotFound:
            return False
        return True

    def _stored_sha256(self, key: str) -> str | None:
        try:
            with self._errors(f"checking {key}"):
                head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except _NotFound:
            return None
        value = head.get("ChecksumSHA256")
        return str(value) if value else None

    def _abort_uploads(self, prefix: str) -> None:
        """Abort multipart uploads an interrupted run left open under ``prefix`` (they cost storage)."""
        with self._errors(f"listing unfinished uploads under {prefix}"):
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
            for upload in listing.get("Uploads", []):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                   UploadId=upload["UploadId"])

    # -- the connection

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use (credentials from boto3's usual chain)."""
        if self._client is None:
            # botocore retries a request once more itself; deposit_bag retries whole deposits (with
            # backoff) on top.  Response checksums are not validated by botocore: every object is
            # re-hashed here and compared with the bag's manifests, which turns damage into findings.
            config = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=10,
                            read_timeout=60, s3={"addressing_style": "path"} if self.endpoint else None,
                            response_checksum_validation="when_required")
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint, region_name=self.region, config=config)
        return self._client

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """botocore failures as Strongroom errors: network and throttling retryable, the rest not."""
        try:
            yield
        except NoCredentialsError:
            raise DepositError(f"{redact(self.url)}: no credentials for S3 (set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "?"))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise _NotFound(what) from exc
            if code in _PRECONDITION_CODES:
                raise _Precondition(f"{redact(self.url)}: {what}: {code} {error.get('Message', '')}".rstrip()) from exc
            cls = RetryableDepositError if code in _RETRYABLE_CODES else DepositError
            raise cls(f"{redact(self.url)}: {what}: {code} {error.get('Message', '')}".rstrip()) from exc
        except SSLError as exc:  # a certificate problem does not heal by waiting
            raise DepositError(f"{redact(self.url)}: {what}: TLS failed: {exc}") from exc
        except (HTTPClientError, BotoConnectionError, IncompleteReadError, ConnectionError, TimeoutError) as exc:
            raise RetryableDepositError(f"{redact(self.url)}: {what}: connection failed ({type(exc).__name__})") from exc
        except BotoCoreError as exc:
            raise DepositError(f"{redact(self.url)}: {what}: {exc}") from exc


class _NotFound(DepositError):
    """An object is absent (internal: callers turn it into None or False)."""


class _Precondition(DepositError):
    """A conditional write was refused: the object is not as the condition said (see :class:`_Lease`)."""


#: Answers to a conditional write whose condition failed (412), or that lost to another at once (409).
_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class _Lease:
    """This deposit's hold on a bag name in the bucket (see the module's docstring).

    Written by hand: boto3 has no lock, and S3's conditional writes are the only compare-and-set
    the store offers.  A thread renews the lease while the deposit uploads and reads back.
    """

    def __init__(self, target: S3Target, name: str) -> None:
        self.target, self.name = target, name
        self.key = target._lease_key(name)
        self.etag = ""
        self.tag = uuid.uuid4().hex[:8]  # tells this deposit's lease from a later one of the same process
        self.until = 0.0  # when the lease last written runs out (epoch seconds)
        self.lost: str | None = None
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name=f"s3-lease-{name}", daemon=True)

    def __enter__(self) -> _Lease:
        try:
            self.etag = self._write(IfNoneMatch="*")
        except _Precondition:
            held = self._read_current()
            if held is None:  # released between the two requests: one more try, then give way
                self.etag = self._write_or_busy(IfNoneMatch="*")
            elif held.until > time.time() and not held.dead():
                raise self._busy(held)
            else:  # the holder died, or stopped renewing: take over
                self.etag = self._write_or_busy(IfMatch=held.etag)
        self._renewer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._renewer.join()
        if self.lost is None:  # best effort: a lease left behind only delays the next deposit
            try:
                self.target.client.delete_object(Bucket=self.target.bucket, Key=self.key, IfMatch=self.etag)
            except (BotoCoreError, ClientError):
                pass

    def check(self) -> None:
        """Raise unless this deposit still holds the lease (called before anything is marked)."""
        if self.lost is not None:
            raise RetryableDepositError(f"{self.target.url}: lost the lease on {self.name} ({self.lost}); "
                                        "nothing was marked complete")

    def _renew(self) -> None:
        while not self._stop.wait(self.target.lease_seconds / 3):
            try:
                self.etag = self._write(IfMatch=self.etag)
            except _Precondition:
                self.lost = "another deposit took it over"
                return
            except DepositError as exc:  # the store unreachable: try again at the next beat, in time
                if time.time() >= self.until:
                    self.lost = f"could not renew it: {exc}"
                    return

    def _write(self, **condition: str) -> str:
        until = time.time() + self.target.lease_seconds
        body = json.dumps({"bag": self.name, "host": socket.gethostname(), "pid": os.getpid(), "tag": self.tag,
                           "until": until}).encode()
        with self.target._errors(f"writing the lease on {self.name}"):
            reply = self.target.client.put_object(Bucket=self.target.bucket, Key=self.key, Body=body,
                                                  ContentType="application/json", **condition)
        self.until = until
        return str(reply["ETag"])

    def _write_or_busy(self, **condition: str) -> str:
        try:
            return self._write(**condition)
        except _Precondition:
            held = self._read_current()
            raise self._busy(held or _Held("", 0, "", time.time(), "")) from None

    def _read_current(self) -> _Held | None:
        """The lease as it is in the bucket now; None if there is none."""
        try:
            with self.target._errors(f"reading the lease on {self.name}"):
                reply = self.target.client.get_object(Bucket=self.target.bucket, Key=self.key)
                raw = reply["Body"].read(64 * 1024)
        except _NotFound:
            return None
        try:
            lease = json.loads(raw)
            return _Held(str(lease["host"]), int(lease["pid"]), str(lease["tag"]), float(lease["until"]),
                         str(reply["ETag"]))
        except (ValueError, KeyError, TypeError):  # unreadable: treat as run out, so it is replaced
            return _Held("", 0, "", 0.0, str(reply["ETag"]))

    def _busy(self, held: _Held) -> RetryableDepositError:
        when = dt.datetime.fromtimestamp(held.until, dt.timezone.utc).isoformat(timespec="seconds")
        return RetryableDepositError(f"{self.target.url}: {self.name} is being deposited by {held.holder} "
                                     f"(lease until {when}); try again later")


class _Held(NamedTuple):
    """A lease found in the bucket."""

    host: str
    pid: int
    tag: str
    until: float  # epoch seconds
    etag: str

    @property
    def holder(self) -> str:
        """Who holds it, as another deposit's message says."""
        return f"{self.host} pid {self.pid} ({self.tag})" if self.host else "another deposit"

    def dead(self) -> bool:
        """Whether the holder is a process of this machine that no longer runs (a killed deposit,
        resumed at once instead of after its lease: another machine's holder is never judged dead)."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            pass
        return False


class _Multipart:
    """One multipart upload: parts sent as they come, each with its SHA-256; aborted on failure."""

    def __init__(self, target: S3Target, key: str, *, content_type: str | None = None) -> None:
        self.target, self.key, self.content_type = target, key, content_type
        self.parts: list[dict[str, Any]] = []
        self.upload_id = ""

    def __enter__(self) -> _Multipart:
        extra = {"ContentType": self.content_type} if self.content_type else {}
        with self.target._errors(f"starting the upload of {self.key}"):
            reply = self.target.client.create_multipart_upload(
                Bucket=self.target.bucket, Key=self.key, ChecksumAlgorithm="SHA256", **extra)
        self.upload_id = reply["UploadId"]
        return self

    def send(self, block: bytes) -> None:
        number = len(self.parts) + 1
        checksum = base64.b64encode(hashlib.sha256(block).digest()).decode()
        with self.target._errors(f"uploading part {number} of {self.key}"):
            reply = self.target.client.upload_part(
                Bucket=self.target.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
                Body=block, ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
        self.parts.append({"ETag": reply["ETag"], "PartNumber": number, "ChecksumSHA256": checksum})

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        client, bucket = self.target.client, self.target.bucket
        if exc_type is None:
            if not self.parts:
                self.send(b"")
            with self.target._errors(f"completing the upload of {self.key}"):
                client.complete_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self.upload_id,
                                                 MultipartUpload={"Parts": self.parts})
            return
        try:  # best effort: the next deposit aborts whatever is left open under the bag's prefix
            client.abort_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self.upload_id)
        except (BotoCoreError, ClientError):
            pass


class _PartWriter(io.RawIOBase):
    """A write-only stream that hands ``part_size`` blocks to a multipart upload (for the tar)."""

    def __init__(self, upload: _Multipart, part_size: int) -> None:
        super().__init__()
        self.upload, self.part_size = upload, part_size
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        while len(self.buffer) >= self.part_size:
            self.upload.send(bytes(self.buffer[: self.part_size]))
            del self.buffer[: self.part_size]
        return len(data)

    def close(self) -> None:
        if not self.closed and self.buffer:
            self.upload.send(bytes(self.buffer))
            self.buffer.clear()
        super().close()


def _int(query: dict[str, str], name: str, default: int, url: str) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        raise UsageError(f"'{redact(url)}': {name} must be a whole number") from None


# ----------------------------------------------------------------------------- repair (pipeline.audit.repair)


@contextmanager
def open_object(target: S3Target, bag_name: str, path: str) -> Iterator[Callable[[int], bytes]]:
    """``read(n)`` of the held bag's file ``path``, streamed from the store (a tar member, when serialised)."""
    if target.serialization == "tar":
        key = target._key(f"{bag_name}.tar")
        with target._errors(f"reading {key}"):
            body = target.client.get_object(Bucket=target.bucket, Key=key)["Body"]
        try:
            with tarfile.open(fileobj=body, mode="r|") as tar:
                for member in tar:
                    if member.isfile() and member.name == f"{bag_name}/{path}":
                        extracted = tar.extractfile(member)
                        if extracted is not None:
                            yield extracted.read
                            return
            raise DepositError(f"{redact(target.url)}: {bag_name}.tar holds no file '{path}'")
        except tarfile.TarError as exc:
            raise DepositError(f"{bag_name}.tar: not a readable tar: {exc}") from exc
        finally:
            body.close()
    key = target._key(bag_name, path)
    with target._errors(f"reading {key}"):
        stream = target.client.get_object(Bucket=target.bucket, Key=key)["Body"]

    def read(n: int) -> bytes:
        with target._errors(f"reading {key}"):
            return bytes(stream.read(n))

    try:
        yield read
    finally:
        stream.close()


def replace_object(target: S3Target, bag_name: str, path: str, staged: Path, digests: Mapping[str, str]) -> None:
    """Upload ``staged`` as the held bag's file ``path`` (one object, replaced whole), then read it back.

    DepositError when the object read back does not have ``digests``.  A tar-serialised copy is one
    object for the whole bag: it is rebuilt whole (:func:`replace_tar`), never file by file.
    """
    if target.serialization == "tar":
        raise DepositError(f"{redact(target.url)}: a tar-serialised copy is rebuilt whole, not file by file")
    key = target._key(bag_name, path)
    size, sha = digest_file(staged, ["sha256"])
    target._upload(key, staged, size, base64.b64encode(bytes.fromhex(sha["sha256"])).decode())
    with open_object(target, bag_name, path) as read:
        found_size, found = digest_reader(read, sorted(digests))
    if found_size != size or any(found[a] != v for a, v in digests.items()):
        raise DepositError(f"{redact(target.url)}: {key} read back does not match what was uploaded")


def quarantine_object(target: S3Target, bag_name: str, path: str, dest: Path) -> None:
    """Move the held bag's object ``path`` to the local file ``dest``: downloaded, flushed, then deleted.

    In a tar-serialised copy ``path`` is a member of the tar: it is extracted to ``dest`` and flushed;
    it leaves the copy when the repair replaces the tar (:func:`replace_tar`).
    """
    key = target._key(bag_name, path)
    with open_object(target, bag_name, path) as read, open(dest, "xb") as out:
        while block := read(1 << 20):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    if target.serialization == "tar":
        return
    with target._errors(f"removing {key}"):
        target.client.delete_object(Bucket=target.bucket, Key=key)


def tar_repair_key(target: S3Target, bag_name: str) -> str:
    """The temporary key a repair uploads a rebuilt tar to before it is copied into place."""
    return target._key(MARKERS, f"{bag_name}.repair.tar")


def replace_tar(target: S3Target, bag_name: str, tree: Path, expected: Fixity) -> None:
    """Rebuild the held bag's tar object from the verified bag tree ``tree`` and put it in place.

    As the deposit writes tar objects: one multipart upload under the deposit's lease, here to a
    temporary key first; that object is read back and every member re-hashed against ``expected``
    (the ledger's reference); only then is it copied over ``<bag>.tar`` (one server-side step: the
    old tar or the new one, never a partial) and the temporary key removed.  DepositError when the
    object read back does not match; the old tar is then left as it was.
    """
    temp, key = tar_repair_key(target, bag_name), target._key(f"{bag_name}.tar")
    with _Lease(target, bag_name) as lease:
        target._abort_uploads(temp)
        with _Multipart(target, temp, content_type=TAR_MEDIA_TYPE) as upload:
            writer = _PartWriter(upload, target.part_size)
            write_tar(tree, writer, bag_name)
            writer.close()
        with target._errors(f"reading back {temp}"):
            body = target.client.get_object(Bucket=target.bucket, Key=temp)["Body"]
            try:
                found = tar_fixity(body, bag_name, sorted({a for _, d in expected.values() for a in d}))
            finally:
                body.close()
        findings = compare(found, expected)
        if findings:
            remove_tar_repair(target, bag_name)
            raise DepositError(f"{redact(target.url)}: the rebuilt {bag_name}.tar read back does not match the "
                               f"ledger ({findings[0].code} {findings[0].path}); the old object is left as it was")
        lease.check()
        with target._errors(f"copying {temp} to {key}"):
            size = int(target.client.head_object(Bucket=target.bucket, Key=temp)["ContentLength"])
            target.client.copy({"Bucket": target.bucket, "Key": temp}, target.bucket, key,
                               ExtraArgs={"ContentType": TAR_MEDIA_TYPE, "MetadataDirective": "REPLACE"})
            copied = int(target.client.head_object(Bucket=target.bucket, Key=key)["ContentLength"])
        if copied != size:
            raise DepositError(f"{redact(target.url)}: {key} is {copied} bytes after the copy, not {size}")
    remove_tar_repair(target, bag_name)


def remove_tar_repair(target: S3Target, bag_name: str) -> None:
    """Remove what a (killed) tar repair left: its temporary object and any unfinished upload of it."""
    temp = tar_repair_key(target, bag_name)
    target._abort_uploads(temp)
    with target._errors(f"removing {temp}"):
        target.client.delete_object(Bucket=target.bucket, Key=temp)


def stray_objects(target: S3Target, bag_name: str, keep: Sequence[str]) -> list[str]:
    """Paths in the bag of objects under the bag's prefix that ``keep`` does not name (none for a tar copy).

    A deposit that resumes an unfinished copy deletes these; a repair moves them to quarantine first.
    """
    if target.serialization == "tar":
        return []
    base = target._key(bag_name) + "/"
    wanted = set(keep)
    return sorted(k[len(base):] for k in target._keys(base) if k[len(base):] not in wanted)
