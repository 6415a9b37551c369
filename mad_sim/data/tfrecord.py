"""TFRecord files without TensorFlow: streaming reader and atomic writer.

A TFRecord file is a plain sequence of records, each framed as

    uint64 length            (8 bytes, little-endian)
    uint32 masked_crc(length bytes)
    byte   payload[length]
    uint32 masked_crc(payload)

where ``masked_crc(b) = (((c >> 15) | (c << 17)) + 0xA282EAD8) mod 2**32`` with
``c`` the CRC32C (Castagnoli) of ``b``, all 32-bit little-endian.  Both CRCs
are checked on read (google-crc32c).  Files are read one record at a time
through a buffered file object, so a multi-GB file never sits in memory.

Errors name the file and the zero-based record index:
:class:`~mad_sim.errors.DataNotFoundError` (missing path, glob with no match),
:class:`~mad_sim.errors.TruncatedRecordError` (file ends inside a record, or
is empty), :class:`~mad_sim.errors.CorruptRecordError` (CRC mismatch).
"""

from __future__ import annotations

import glob
import os
import struct
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import google_crc32c

from mad_sim.errors import CorruptRecordError, DataNotFoundError, TruncatedRecordError
from mad_sim.io import atomic_path

PathLike = Union[str, os.PathLike]
PathSpec = Union[PathLike, Sequence[PathLike]]

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
MAX_RECORD_BYTES = 1 << 34
"""Refuse record lengths above 16 GiB: such a length is a corrupt header that passed its CRC by chance."""


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data`` (an unsigned 32-bit int)."""
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def expand_paths(spec: PathSpec, patterns: Tuple[str, ...] = ()) -> List[Path]:
    """Expand a path, a glob pattern, a directory, or a list of those into files.

    A directory expands to its files matching ``patterns`` (``fnmatch`` globs
    such as ``"*.tfrecord*"``; every file when empty), sorted by name.
    Glob patterns are sorted too, so the order is reproducible.

    Raises DataNotFoundError for a path that does not exist or a pattern or
    directory that matches nothing.
    """
    items: Iterable[PathLike] = [spec] if isinstance(spec, (str, os.PathLike)) else spec
    out: List[Path] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text)
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and (not patterns or any(p.match(pat) for pat in patterns))
            )
            if not found:
                raise DataNotFoundError(f"directory holds no file matching {list(patterns) or '*'}", path=text)
            out.extend(found)
        elif glob.has_magic(text):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                raise DataNotFoundError("glob pattern matches no file", path=text)
            out.extend(found)
        else:
            raise DataNotFoundError("no such file", path=text)
    if not out:
        raise DataNotFoundError("no input path given")
    return out


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


def iter_records_from(f: BinaryIO, name: str, check_crc: bool = True, size: Optional[int] = None) -> Iterator[bytes]:
    """Yield the payloads of the records in an open binary stream, in order.

    ``name`` is the file name used in error messages.  An empty stream is a
    TruncatedRecordError (record 0): a TFRecord file always holds a record.
    ``size`` (the stream's total bytes, if known) lets a record that claims
    more bytes than remain fail before anything is allocated for it.
    """
    index = 0
    offset = 0
    while True:
        header = _read_exact(f, _HEADER.size)
        if not header:
            if index == 0:
                raise TruncatedRecordError("empty file: no TFRecord record", path=name, record=0)
            return
        if len(header) < _HEADER.size:
            raise TruncatedRecordError(f"file ends inside the record header ({len(header)} of 12 bytes)", path=name, record=index)
        length, length_crc = _HEADER.unpack(header)
        if check_crc and masked_crc32c(header[:8]) != length_crc:
            raise CorruptRecordError(
                f"length CRC mismatch (stored {length_crc:#010x}, computed "
                f"{masked_crc32c(header[:8]):#010x}); not a TFRecord file, or corrupt",
                path=name,
                record=index,
            )
        if length > MAX_RECORD_BYTES:
            raise CorruptRecordError(f"record length {length} bytes is implausible", path=name, record=index)
        if size is not None and offset + _HEADER.size + length + _FOOTER.size > size:
            raise TruncatedRecordError(
                f"record of {length} bytes runs past the end of the file ({size - offset - _HEADER.size} bytes left)",
                path=name,
                record=index,
            )
        payload = _read_exact(f, length)
        if len(payload) < length:
            raise TruncatedRecordError(
                f"file ends inside the payload ({len(payload)} of {length} bytes)", path=name, record=index
            )
        footer = _read_exact(f, _FOOTER.size)
        if len(footer) < _FOOTER.size:
            raise TruncatedRecordError("file ends before the payload CRC", path=name, record=index)
        if check_crc:
            (payload_crc,) = _FOOTER.unpack(footer)
            computed = masked_crc32c(payload)
            if computed != payload_crc:
                raise CorruptRecordError(
                    f"payload CRC mismatch (stored {payload_crc:#010x}, computed {computed:#010x})", path=name, record=index
                )
        offset += _HEADER.size + length + _FOOTER.size
        yield payload
        index += 1


def iter_records(path: PathLike, check_crc: bool = True) -> Iterator[bytes]:
    """Stream the payloads of one TFRecord file (see :func:`iter_records_from`)."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DataNotFoundError("no such file", path=name)
    with open(name, "rb", buffering=1 << 20) as f:
        yield from iter_records_from(f, name, check_crc, os.fstat(f.fileno()).st_size)


def read_records(spec: PathSpec, check_crc: bool = True) -> Iterator[Tuple[Path, int, bytes]]:
    """Stream ``(file, record_index, payload)`` over many files / globs / directories.

    Directories expand to their ``*.tfrecord*`` files.  Files are opened one
    after the other, lazily.
    """
    for path in expand_paths(spec, ("*.tfrecord*",)):
        for index, payload in enumerate(iter_records(path, check_crc)):
            yield path, index, payload


def frame_record(payload: bytes) -> bytes:
    """The framed bytes of one record (header, payload, payload CRC)."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc32c(length)) + payload + struct.pack("<I", masked_crc32c(payload))


def write_records(path: PathLike, payloads: Iterable[bytes]) -> int:
    """Write ``payloads`` as a TFRecord file, atomically; return the record count.

    The records are streamed to a temporary file beside ``path`` that is
    renamed onto it only when every record is written.
    """
    count = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for payload in payloads:
            f.write(frame_record(bytes(payload)))
            count += 1
    return count
