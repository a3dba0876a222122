"""An upload handler that seals the file as it streams in, so plaintext PHI never touches disk."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers, StopUpload

from healthmail.actors import Actor
from healthmail.errors import ApplicationError

from . import services
from .storage import UploadWriter

FIELD_NAME = "file"


class SealedUpload(UploadedFile):
    """What the form sees: a name and a size; the content is already sealed in the database."""

    def __init__(self, writer: UploadWriter, *, name: str, size: int):
        super().__init__(file=io.BytesIO(), name=name, size=size)
        self.writer = writer


class SealingUploadHandler(FileUploadHandler):
    def __init__(self, request, *, tenant, actor: Actor):
        super().__init__(request)
        self.tenant = tenant
        self.actor = actor
        self.writer: UploadWriter | None = None
        self.error = ""

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        if field_name == FIELD_NAME and self.writer is None:
            try:
                self.writer = services.import_upload_begin(
                    tenant=self.tenant, actor=self.actor, file_name=file_name
                )
            except ApplicationError as error:  # refused before anything is stored (no BAA)
                self.error = error.message
            raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        if self.writer is None or self.error:
            return None  # another file field: dropped, never stored
        try:
            self.writer.write(raw_data)
        except ApplicationError as error:
            self.error = error.message
            raise StopUpload(connection_reset=True) from None
        return None

    def file_complete(self, file_size):
        if self.writer is None or self.error or self.field_name != FIELD_NAME:
            return None
        return SealedUpload(self.writer, name=self.file_name, size=file_size)
