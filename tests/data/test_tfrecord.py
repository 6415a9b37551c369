"""TFRecord framing: real files, writing, and every bad-input case."""

from __future__ import annotations

import struct
from pathlib import Path

import google_crc32c
import pytest

from mad_sim.data.tfrecord import expand_paths, frame_record, iter_records, masked_crc32c, read_records, write_records
from mad_sim.errors import CorruptRecordError, DataNotFoundError, TruncatedRecordError


def test_masked_crc_matches_formula():
    data = b"mad-sim"
    crc = google_crc32c.value(data)
    assert masked_crc32c(data) == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32


def test_real_header_crc_matches(womd_path):
    header = womd_path.read_bytes()[:12]
    length, stored = struct.unpack("<QI", header)
    assert length == 996519 and masked_crc32c(header[:8]) == stored


def test_real_files_have_one_record_each(womd_path, womd_still_path, frame_path):
    for path, size in [(womd_path, 996519), (womd_still_path, None), (frame_path, None)]:
        payloads = list(iter_records(path))
        assert len(payloads) == 1
        assert len(payloads[0]) + 16 == path.stat().st_size
        if size is not None:
            assert len(payloads[0]) == size


def test_write_then_read_round_trips(tmp_path: Path):
    payloads = [b"", b"a", bytes(range(256)) * 300]
    out = tmp_path / "x.tfrecord"
    assert write_records(out, payloads) == 3
    assert list(iter_records(out)) == payloads
    assert out.read_bytes() == b"".join(frame_record(p) for p in payloads)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # atomic: no temp file left


def test_many_files_globs_and_directories(tmp_path: Path):
    for i in range(3):
        write_records(tmp_path / f"part-{i}.tfrecord", [f"{i}-{k}".encode() for k in range(i + 1)])
    (tmp_path / "notes.txt").write_text("not a record file")
    got = [(p.name, k, b.decode()) for p, k, b in read_records(str(tmp_path / "part-*.tfrecord"))]
    assert got == [
        ("part-0.tfrecord", 0, "0-0"),
        ("part-1.tfrecord", 0, "1-0"),
        ("part-1.tfrecord", 1, "1-1"),
        ("part-2.tfrecord", 0, "2-0"),
        ("part-2.tfrecord", 1, "2-1"),
        ("part-2.tfrecord", 2, "2-2"),
    ]
    assert [p.name for p in expand_paths(tmp_path, ("*.tfrecord*",))] == ["part-0.tfrecord", "part-1.tfrecord", "part-2.tfrecord"]
    listed = [tmp_path / "part-2.tfrecord", tmp_path / "part-0.tfrecord"]
    assert [b for _, _, b in read_records(listed)] == [b"2-0", b"2-1", b"2-2", b"0-0"]


def _two_record_file(tmp_path: Path) -> Path:
    out = tmp_path / "two.tfrecord"
    write_records(out, [b"first record payload", b"second record payload"])
    return out


@pytest.mark.parametrize("cut", [3, 12, 20, 35])
def test_truncated_file_names_file_and_record(tmp_path: Path, cut: int):
    path = _two_record_file(tmp_path)
    first = len(frame_record(b"first record payload"))
    data = path.read_bytes()
    path.write_bytes(data[: first + cut])
    with pytest.raises(TruncatedRecordError) as err:
        list(iter_records(path))
    assert err.value.record == 1 and err.value.path == str(path)
    assert str(path) in str(err.value) and "record 1" in str(err.value)


@pytest.mark.parametrize("offset, what", [(2, "length"), (12 + 5, "payload"), (8, "length")])
def test_flipped_byte_is_a_crc_error(tmp_path: Path, offset: int, what: str):
    path = _two_record_file(tmp_path)
    first = len(frame_record(b"first record payload"))
    data = bytearray(path.read_bytes())
    data[first + offset] ^= 0x10
    path.write_bytes(bytes(data))
    reader = iter_records(path)
    assert next(reader) == b"first record payload"
    with pytest.raises(CorruptRecordError, match=what) as err:
        next(reader)
    assert err.value.record == 1 and "record 1" in str(err.value)


def test_flipped_byte_in_real_file(womd_path: Path, tmp_path: Path):
    data = bytearray(womd_path.read_bytes())
    data[500_000] ^= 0x01
    bad = tmp_path / "flipped.tfrecord"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptRecordError, match="payload CRC mismatch") as err:
        list(iter_records(bad))
    assert err.value.record == 0 and str(bad) in str(err.value)


def test_empty_file(tmp_path: Path):
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    with pytest.raises(TruncatedRecordError, match="empty file") as err:
        list(iter_records(empty))
    assert err.value.record == 0 and str(empty) in str(err.value)


def test_missing_paths(tmp_path: Path):
    with pytest.raises(DataNotFoundError, match="no such file"):
        list(iter_records(tmp_path / "nope.tfrecord"))
    with pytest.raises(DataNotFoundError, match="glob pattern matches no file"):
        list(read_records(str(tmp_path / "*.tfrecord")))
    with pytest.raises(DataNotFoundError, match="no file matching"):
        list(read_records(tmp_path))
    with pytest.raises(FileNotFoundError):  # DataNotFoundError is also a FileNotFoundError
        list(read_records([tmp_path / "missing"]))


def test_length_past_end_fails_before_reading(tmp_path: Path):
    """A header whose (CRC-valid) length exceeds the file is reported as truncation, without allocating it."""
    length = struct.pack("<Q", 1 << 33)
    bad = tmp_path / "huge.tfrecord"
    bad.write_bytes(length + struct.pack("<I", masked_crc32c(length)) + b"tiny")
    with pytest.raises(TruncatedRecordError, match="runs past the end") as err:
        list(iter_records(bad))
    assert err.value.record == 0
