"""Reading a multipart/form-data upload as it streams in, with every limit checked while reading.

Starlette's form parser stores files of any size before a handler sees them; here each file, each
text field and the whole body are counted as they arrive, and reading stops at the first byte over
a limit (413). Files go to spooled temporary files: in memory up to 1 MiB each, then on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from leadersboard.settings import Limits

from .intake.uploads import (
    FILES_FIELD,
    MAX_FIELD_BYTES,
    MAX_FILES,
    TEXT_FIELDS,
    UploadedFile,
    UploadError,
    UploadTooLarge,
)

SPOOL_BYTES = 1024 * 1024
FORM_OVERHEAD_BYTES = 1024 * 1024  # part headers and text fields, on top of the files themselves
# After refusing an upload mid-body, read (and drop) a little more of it before the answer closes the
# connection: closing on unread data resets it, and the client could lose the 413 (nginx "lingers" too).
LINGER_BYTES = 16 * 1024 * 1024
LINGER_SECONDS = 3.0


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)
    file: Any = None  # a SpooledTemporaryFile for file parts
    size: int = 0


class FormReader:
    """Collects the fields and files of one multipart body; raises `UploadError` / `UploadTooLarge`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.fields: dict[str, str] = {}
        self.files: list[UploadedFile] = []
        self.file_bytes = 0
        self.reading = False  # the body is being read (else the answer can go before any of it)
        self.received = 0
        self.declared: int | None = None  # Content-Length, when sent
        self._open: list[Any] = []
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""

    async def read(self, headers: Mapping[str, str], stream: AsyncIterator[bytes]) -> None:
        ctype, params = parse_options_header(headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise UploadError("Send the submission as multipart/form-data (files, entrypoint, config_file, metadata)")
        max_body = self.limits.max_submission_bytes + FORM_OVERHEAD_BYTES
        declared = headers.get("content-length", "")
        self.declared = int(declared) if declared.isdigit() else None
        if self.declared is not None and self.declared > max_body:
            raise UploadTooLarge(f"The upload is {_mb(self.declared)}, over the {_mb(max_body)} limit of a request")
        parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
            "on_header_field": self._header_field, "on_header_value": self._header_value_part,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
        })
        try:
            self.reading = True
            async for chunk in stream:
                self.received += len(chunk)
                if self.received > max_body:
                    raise UploadTooLarge(f"The upload is over the {_mb(max_body)} limit of a request")
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            self.close()
            raise UploadError(f"The body is not valid multipart/form-data (does it use the boundary its "
                              f"Content-Type names?): {exc}") from None
        except BaseException:
            self.close()
            raise
        for item in self.files:
            item.content.seek(0)

    @property
    def body_left(self) -> bool:
        """Part of the body may still be on its way: reading began and less than its Content-Length
        (or a body of no declared length) came. A refusal drops the rest before it answers; when
        all of it came, there is nothing to wait for."""
        return self.reading and (self.declared is None or self.received < self.declared)

    def close(self) -> None:
        for spooled in self._open:
            spooled.close()

    def _begin(self) -> None:
        self._part = _Part()
        self._disposition = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = _text(options.get(b"name"), "field name")
        filename = options.get(b"filename")
        part = self._part
        part.name = name
        if name == FILES_FIELD:
            if filename is None:
                raise UploadError("'files' parts must be files (a filename in Content-Disposition)")
            if len(self.files) >= MAX_FILES:
                raise UploadTooLarge(f"More than {MAX_FILES} files in one upload")
            part.filename = _text(filename, "file name")
            part.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115  # closed by close()
            self._open.append(part.file)
        elif name in TEXT_FIELDS:
            if filename is not None:
                raise UploadError(f"'{name}' must be a text field, not a file")
            if name in self.fields:
                raise UploadError(f"'{name}' is given twice")
        else:
            raise UploadError(f"Unknown field {name!r}; the fields are: {FILES_FIELD}, {', '.join(TEXT_FIELDS)}")

    def _data(self, data: bytes, start: int, end: int) -> None:
        part, size = self._part, end - start
        part.size += size
        if part.file is None:
            if part.size > MAX_FIELD_BYTES:
                raise UploadTooLarge(f"'{part.name}' is over the {MAX_FIELD_BYTES // 1024} KiB limit of a field")
            part.data += data[start:end]
            return
        self.file_bytes += size
        if part.size > self.limits.max_file_bytes:
            raise UploadTooLarge(f"{part.filename} is over the {_mb(self.limits.max_file_bytes)} limit per file; "
                                 "leave large files (weights, data) out of the submission")
        if self.file_bytes > self.limits.max_submission_bytes:
            raise UploadTooLarge(f"The files are over the {_mb(self.limits.max_submission_bytes)} limit of a "
                                 "submission")
        part.file.write(data[start:end])

    def _end(self) -> None:
        part = self._part
        if part.file is None:
            self.fields[part.name] = _text(bytes(part.data), f"field '{part.name}'")
        elif part.filename or part.size:  # a browser sends an empty, nameless part when no file was chosen
            self.files.append(UploadedFile(part.filename or "", part.file, part.size))


async def discard_rest(receive: Callable[[], Awaitable[Mapping[str, Any]]]) -> None:
    """Drop what is left of a refused body, within `LINGER_BYTES` and `LINGER_SECONDS`."""
    dropped = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_SECONDS):
            while dropped <= LINGER_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


def _text(raw: bytes | None, what: str) -> str:
    if raw is None:
        raise UploadError(f"A part without a {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadError(f"The {what} is not UTF-8 text") from None


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
