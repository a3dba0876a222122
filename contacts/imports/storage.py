"""The uploaded file, sealed at rest: fixed-size pieces, each sealed with the upload's own object key.

The raw file holds PHI, so plaintext never reaches disk: the upload handler writes pieces here as
they arrive, and workers read them back through `SealedFile`, a seekable file that opens one piece
at a time (CSV reads straight through; XLSX is a zip and seeks). Shredding deletes the key and the
pieces, so a copy in a backup can never be opened again.
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict

from django.utils import timezone

from contacts.models import ImportJob, ImportUploadChunk
from healthmail.actors import Actor
from healthmail.crypto import objects
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.models import ObjectKey
from healthmail.errors import ApplicationError

CHUNK_SIZE = 1024 * 1024
HEAD_SIZE = 64 * 1024
CACHED_CHUNKS = 2  # enough for a zip's back-and-forth between neighbouring pieces


class UploadTooLarge(ApplicationError):
    status_code = 413
    title = "File too large"


class UploadUnreadable(ApplicationError):
    """The sealed upload is gone (shredded) or damaged: the job cannot go on."""


def _aad(job_id, index: int) -> bytes:
    return f"contact-import|{job_id}|{index}".encode()


def _headers_aad(job_id) -> bytes:
    return f"contact-import|{job_id}|headers".encode()


def headers_seal(job: ImportJob, headers: list[str]) -> None:
    """Keep the header row under the upload's key (a file without one puts a patient's values there)."""
    plaintext = json.dumps(headers).encode()
    job.headers_sealed = objects.content_seal(_object_key(job), plaintext, aad=_headers_aad(job.pk))
    job.column_count = len(headers)


def job_headers(job: ImportJob) -> list[str]:
    """The file's column names while the upload exists; "Column N" once it is shredded."""
    if job.object_key_id is not None and job.headers_sealed:
        try:
            sealed = bytes(job.headers_sealed)
            opened = objects.content_open(job.object_key_id, job.tenant_id, sealed, aad=_headers_aad(job.pk))
        except DecryptionError:
            pass
        else:
            return json.loads(opened)
    return [f"Column {index + 1}" for index in range(job.column_count)]


def _object_key(job: ImportJob) -> ObjectKey:
    object_key = (
        ObjectKey.objects.filter(pk=job.object_key_id).first() if job.object_key_id is not None else None
    )
    if object_key is None:
        raise UploadUnreadable("The upload was destroyed; upload the file again.")
    return object_key


class UploadWriter:
    """Seals an upload piece by piece as it streams in; keeps only one piece and the head in memory."""

    def __init__(self, job: ImportJob, *, max_bytes: int):
        self.job = job
        self.max_bytes = max_bytes
        self.object_key = objects.object_key_create(tenant=job.tenant_id)
        job.object_key_id = self.object_key.pk
        job.save(update_fields=["object_key_id"])
        self.head = bytearray()
        self._buffer = bytearray()
        self._size = 0
        self._index = 0

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.max_bytes:
            raise UploadTooLarge(
                f"The file is larger than the limit of {self.max_bytes // (1024 * 1024)} MB."
            )
        if len(self.head) < HEAD_SIZE:
            self.head += data[: HEAD_SIZE - len(self.head)]
        self._buffer += data
        while len(self._buffer) >= CHUNK_SIZE:
            self._seal(bytes(self._buffer[:CHUNK_SIZE]))
            del self._buffer[:CHUNK_SIZE]

    def close(self) -> ImportJob:
        if self._buffer:
            self._seal(bytes(self._buffer))
            self._buffer.clear()
        self.job.size_bytes = self._size
        self.job.chunk_count = self._index
        self.job.save(update_fields=["size_bytes", "chunk_count"])
        return self.job

    def _seal(self, plaintext: bytes) -> None:
        sealed = objects.content_seal(self.object_key, plaintext, aad=_aad(self.job.pk, self._index))
        ImportUploadChunk.objects.create(
            tenant_id=self.job.tenant_id, job=self.job, index=self._index, data=sealed
        )
        self._index += 1


class SealedFile(io.RawIOBase):
    """A read-only, seekable view of a sealed upload. Call inside the job's tenant context."""

    def __init__(self, job: ImportJob):
        super().__init__()
        if job.object_key_id is None:
            raise UploadUnreadable("The uploaded file was already destroyed; upload it again.")
        self.job = job
        self._position = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.job.size_bytes}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        if self._position >= self.job.size_bytes:
            return 0
        index, start = divmod(self._position, CHUNK_SIZE)
        piece = memoryview(self._chunk(index))[start : start + len(buffer)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    def _chunk(self, index: int) -> bytes:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        row = ImportUploadChunk.objects.filter(job_id=self.job.pk, index=index).values_list("data", flat=True)
        sealed = row.first()
        if sealed is None:
            raise UploadUnreadable(f"Part {index + 1} of the uploaded file is missing; upload it again.")
        unreadable = UploadUnreadable("The uploaded file cannot be decrypted; upload it again.")
        key_id = self.job.object_key_id
        if key_id is None:  # its key was shredded
            raise unreadable
        try:
            plaintext = objects.content_open(
                key_id, self.job.tenant_id, bytes(sealed), aad=_aad(self.job.pk, index)
            )
        except DecryptionError:
            raise unreadable from None
        self._cache[index] = plaintext
        if len(self._cache) > CACHED_CHUNKS:
            self._cache.popitem(last=False)
        return plaintext


def upload_shred(*, job: ImportJob, actor: Actor, reason: str) -> None:
    """Crypto-shred the upload: destroy its key, then drop the sealed pieces. Idempotent."""
    if job.object_key_id is not None:
        object_key = ObjectKey.objects.filter(pk=job.object_key_id).first()
        if object_key is not None:
            objects.shred(object_key, actor=actor, reason=reason)
    ImportUploadChunk.objects.filter(job_id=job.pk).delete()
    job.object_key_id = None
    job.shredded_at = timezone.now()
    job.headers_sealed = None  # unreadable without the key anyway; nothing of the file stays
    job.save(update_fields=["object_key_id", "shredded_at", "headers_sealed"])
