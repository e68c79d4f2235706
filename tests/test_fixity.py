"""pipeline.fixity: digests equal hashlib's at every size, threaded paths included; safe copies."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.fixity import (
    CHUNK,
    PARALLEL_THRESHOLD,
    check_algorithms,
    copy_file,
    copy_files,
    digest_file,
    digest_files,
    digest_stream,
)

ALGS = ("sha512", "sha256", "md5")
# Around the block boundaries: empty, one byte, a block +-1, two blocks (the threaded path) +-1.
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1, 3 * CHUNK + 12345]


def _expected(data: bytes, algorithms: tuple[str, ...] = ALGS) -> dict[str, str]:
    return {alg: hashlib.new(alg, data).hexdigest() for alg in algorithms}


@pytest.mark.parametrize("size", SIZES)
def test_digest_file_equals_hashlib_around_block_boundaries(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert digest_file(path, ALGS) == (size, _expected(data))
    assert digest_file(path, ("sha256",)) == (size, _expected(data, ("sha256",)))


@pytest.mark.parametrize("size", [0, CHUNK + 1, 3 * CHUNK])
def test_digest_stream_equals_hashlib(size: int) -> None:
    data = os.urandom(size)
    assert digest_stream(io.BytesIO(data), ALGS) == (size, _expected(data))


@pytest.mark.parametrize("size", SIZES)
def test_copy_file_copies_and_hashes_in_one_pass(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    assert copy_file(tmp_path / "src", tmp_path / "dst", ALGS) == (size, _expected(data))
    assert (tmp_path / "dst").read_bytes() == data


def test_copy_file_refuses_an_existing_target(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"new")
    (tmp_path / "dst").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        copy_file(tmp_path / "src", tmp_path / "dst", ALGS)
    assert (tmp_path / "dst").read_bytes() == b"old"


def test_copy_file_refuses_a_symlinked_source(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"secret")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OSError):
        copy_file(tmp_path / "link", tmp_path / "dst", ALGS)
    assert not (tmp_path / "dst").exists()
    with pytest.raises(OSError):
        digest_file(tmp_path / "link", ALGS)


def test_digest_files_keeps_order_and_matches_hashlib_for_mixed_sizes(tmp_path: Path) -> None:
    # Large files go to worker threads, small ones stay inline: the order must still be the input's.
    sizes = [PARALLEL_THRESHOLD + 7, 10, 0, PARALLEL_THRESHOLD * 2, 4096, PARALLEL_THRESHOLD, 3] * 2
    paths, contents = [], []
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        paths.append(path)
        contents.append(data)
    paths.append(tmp_path / "missing")
    results = list(digest_files(paths, ALGS, workers=2))
    assert [r.path for r in results] == paths
    for result, data in zip(results, contents):
        assert (result.size, result.digests, result.error) == (len(data), _expected(data), None)
    assert isinstance(results[-1].error, FileNotFoundError) and results[-1].digests is None


def test_copy_files_copies_everything_in_order(tmp_path: Path) -> None:
    sizes = [PARALLEL_THRESHOLD + 1, 5, PARALLEL_THRESHOLD * 2, 0]
    pairs, contents = [], []
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        (tmp_path / f"s{i}").write_bytes(data)
        pairs.append((tmp_path / f"s{i}", tmp_path / f"t{i}"))
        contents.append(data)
    results = list(copy_files(pairs, ALGS, workers=2))
    assert [(s, t) for s, t, _, _ in results] == pairs
    for (_, target, size, digests), data in zip(results, contents):
        assert (size, digests) == (len(data), _expected(data))
        assert target.read_bytes() == data


def test_copy_files_raises_the_first_error(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b-target").write_bytes(b"taken")
    (tmp_path / "b").write_bytes(b"b")
    with pytest.raises(FileExistsError):
        list(copy_files([(tmp_path / "a", tmp_path / "a-target"), (tmp_path / "b", tmp_path / "b-target")],
                        ALGS))
    assert (tmp_path / "a-target").read_bytes() == b"a"


def test_check_algorithms_normalises_and_refuses() -> None:
    assert check_algorithms(["SHA-512", "sha256", "sha512"]) == ("sha512", "sha256")
    with pytest.raises(UsageError):
        check_algorithms(["crc32"])
    with pytest.raises(UsageError):
        check_algorithms([])


def test_copy_file_refuses_a_fifo_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """The writer checks its payload before copying; a FIFO swapped in after that must not hang it."""
    import errno
    import signal

    from pipeline.fixity import copy_file

    os.mkfifo(tmp_path / "pipe")
    signal.alarm(10)  # a blocking open would wait forever for a writer: fail instead
    try:
        with pytest.raises(OSError) as caught:
            copy_file(tmp_path / "pipe", tmp_path / "copy", ["sha256"])
    finally:
        signal.alarm(0)
    assert caught.value.errno == errno.EINVAL and "not a regular file" in str(caught.value)
    assert not (tmp_path / "copy").exists()


def test_raw_digests_of_a_small_file_match_hashlib_and_refuse_a_final_symlink(tmp_path: Path) -> None:
    from pipeline.fixity import raw_digests

    data = os.urandom(5000)
    (tmp_path / "f").write_bytes(data)
    assert raw_digests(str(tmp_path / "f"), ["sha512", "md5"]) == (
        5000, [hashlib.sha512(data).digest(), hashlib.md5(data).digest()])
    (tmp_path / "link").symlink_to(tmp_path / "f")
    with pytest.raises(OSError):
        raw_digests(str(tmp_path / "link"), ["sha256"])


def test_a_large_copy_starts_each_written_step_on_its_way_to_disk(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """sync_file_range over every step written, in order, without a gap; the copy is still exact."""
    from pipeline import durable, fixity

    started: list[tuple[int, int]] = []
    real = durable.start_writeback

    def spy(fd: int, offset: int, length: int) -> None:
        started.append((offset, length))
        real(fd, offset, length)  # the real call: it must accept the range on this filesystem

    monkeypatch.setattr(durable, "start_writeback", spy)
    size = 3 * fixity.WRITEBACK_STEP + 12345
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    copied, digests = copy_file(tmp_path / "src", tmp_path / "dst", ["sha256"])
    assert (tmp_path / "dst").read_bytes() == data and copied == size
    assert digests["sha256"] == hashlib.sha256(data).hexdigest()
    assert [offset for offset, _ in started] == [i * fixity.WRITEBACK_STEP for i in range(3)]
    assert all(length == fixity.WRITEBACK_STEP for _, length in started)


def test_start_writeback_is_real_and_harmless_on_a_small_file(tmp_path: Path) -> None:
    from pipeline import durable

    assert durable._sync_file_range is not None  # Linux's libc has it: the copy would lose its write-back
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    fd = os.open(path, os.O_WRONLY)
    try:
        durable.start_writeback(fd, 0, 10)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"x" * 10
