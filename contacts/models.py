"""Contacts (patients and members). Being on a tenant's list is itself PHI, so everything that
identifies a person is encrypted; what segmentation needs is kept as de-identified columns
(birth year with 90+ folded, ZIP3, state, gender, language) or as keyed tokens (clinical codes,
other demographics, tags) that match without decrypting. Field classes are declared on the fields.
"""

import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models

from healthmail.crypto.fields import EncryptedJSONField, EncryptedTextField, PhiClass
from healthmail.tenants.models import TenantOwnedModel


class SensitiveCategory(models.TextChoices):
    """Categories with stricter rules (42 CFR Part 2, state laws): flagged, never marketed by default."""

    BEHAVIORAL_HEALTH = "behavioral_health", "Behavioral health"
    SUBSTANCE_USE = "substance_use", "Substance use disorder (42 CFR Part 2)"
    REPRODUCTIVE = "reproductive", "Reproductive health"
    HIV = "hiv", "HIV / sexually transmitted infections"
    GENETIC = "genetic", "Genetic information"


class JourneyStage(models.TextChoices):
    PROSPECT = "prospect", "Prospect"
    NEW_PATIENT = "new_patient", "New patient"
    ACTIVE = "active", "Active"
    POST_VISIT = "post_visit", "Post-visit"
    OVERDUE = "overdue", "Overdue (inactive)"
    HIGH_RISK = "high_risk", "High risk"
    LAPSED = "lapsed", "Lapsed"


class Contact(TenantOwnedModel):
    # Every encrypted field is sealed under the contact's own key (healthmail/crypto/rowkeys.py):
    # deleting that key shreds the contact, in backups too once the epoch key is destroyed.
    ROW_KEY_FIELD = "object_key_id"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    # Identity: encrypted, found through blind indexes.
    email = EncryptedTextField(phi_class=PhiClass.IDENTIFIER, null=True, blank=True)
    email_index = models.BinaryField(null=True, blank=True, editable=False)
    # The address's index under the index-key version being added, while a rotation fills it in
    # (healthmail/crypto/index_rotation.py: chained kinds); empty otherwise.
    email_index_next = models.BinaryField(null=True, blank=True, editable=False)
    first_name = EncryptedTextField(phi_class=PhiClass.IDENTIFIER, null=True, blank=True)
    last_name = EncryptedTextField(phi_class=PhiClass.IDENTIFIER, null=True, blank=True)
    phone = EncryptedTextField(phi_class=PhiClass.IDENTIFIER, null=True, blank=True)
    phone_index = models.BinaryField(null=True, blank=True, editable=False)
    postal_address = EncryptedJSONField(phi_class=PhiClass.IDENTIFIER, null=True, blank=True)
    birth_date = EncryptedTextField(phi_class=PhiClass.DATE, null=True, blank=True)
    external_ids = EncryptedJSONField(phi_class=PhiClass.IDENTIFIER, null=True, blank=True)

    # Demographics: the full values encrypted; coarse de-identified columns for segmentation.
    demographics = EncryptedJSONField(phi_class=PhiClass.DEMOGRAPHIC, null=True, blank=True)
    birth_year = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Null when 90 or older.")
    age_90_or_older = models.BooleanField(default=False)
    zip3 = models.CharField(max_length=3, blank=True, help_text="000 for sparsely populated ZIP3s.")
    state = models.CharField(max_length=2, blank=True)
    gender = models.CharField(max_length=16, blank=True)
    language = models.CharField(max_length=16, blank=True)
    demographic_tokens = ArrayField(models.BigIntegerField(), default=list, blank=True)

    # Clinical: encrypted; codes as keyed tokens.
    clinical = EncryptedJSONField(phi_class=PhiClass.CLINICAL, null=True, blank=True)
    clinical_tokens = ArrayField(models.BigIntegerField(), default=list, blank=True)
    sensitive_categories = ArrayField(
        models.CharField(max_length=32, choices=SensitiveCategory.choices), default=list, blank=True
    )
    is_minor = models.BooleanField(default=False)

    journey_stage = models.CharField(max_length=32, choices=JourneyStage.choices, blank=True)
    tag_tokens = ArrayField(models.BigIntegerField(), default=list, blank=True)
    tag_tokens_next = ArrayField(models.BigIntegerField(), null=True, blank=True)  # as email_index_next
    custom_fields = EncryptedJSONField(phi_class=PhiClass.DEMOGRAPHIC, null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Deletion requested (API or UI): the contact leaves every list at once; retention disposes of it.
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The contact's key (crypto_objectkey); empty before the first write under per-contact keys, and
    # once shredded. Declared after the encrypted fields: sealing the first of them makes it.
    object_key_id = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "email_index"],
                condition=models.Q(email_index__isnull=False, deleted_at__isnull=True),
                name="contact_email_unique_per_tenant",
            ),
        ]
        indexes = [
            GinIndex(fields=["clinical_tokens"], name="contact_clinical_tokens"),
            GinIndex(fields=["demographic_tokens"], name="contact_demographic_tokens"),
            GinIndex(fields=["tag_tokens"], name="contact_tag_tokens"),
            models.Index(fields=["tenant", "phone_index"], name="contact_phone_index"),
            # Segmentation's covering index: state and age ranges as keys, every other plaintext column
            # a segment condition reads as payload, so the conditions on them (and the consent and
            # engagement look-ups by contact id) run on the index alone (segmentation/compiler.py,
            # two-pass counts). Token arrays stay out: unbounded, they could outgrow an index entry.
            models.Index(
                fields=["tenant", "state", "birth_year"],
                include=[
                    "id",
                    "deleted_at",
                    "age_90_or_older",
                    "gender",
                    "language",
                    "zip3",
                    "journey_stage",
                    "is_minor",
                    "created_at",
                ],
                name="contact_segment_cover",
            ),
            models.Index(fields=["tenant", "journey_stage"], name="contact_journey_stage"),
        ]

    def __str__(self) -> str:
        return f"contact {self.pk}"


class ContactExternalId(TenantOwnedModel):
    """Upsert key from an EHR/CRM: (system, blind index of the id) → contact."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="external_id_links")
    system = models.CharField(max_length=32)
    value_index = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "system", "value_index"], name="external_id_unique_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return f"{self.system} id of {self.contact_id}"


class CustomField(TenantOwnedModel):
    """A tenant-defined contact attribute, declared with its PHI class."""

    class Type(models.TextChoices):
        TEXT = "text", "Text"
        NUMBER = "number", "Number"
        DATE = "date", "Date"
        BOOLEAN = "boolean", "Yes/no"
        CHOICE = "choice", "Choice"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(max_length=50)
    label = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.TEXT)
    choices = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    phi_class = models.CharField(max_length=16, choices=PhiClass.choices, default=PhiClass.DEMOGRAPHIC)
    segmentable = models.BooleanField(
        default=False, help_text="Kept as a keyed token so segments can match it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="custom_field_key_unique")]

    def __str__(self) -> str:
        return self.label


# --- Import jobs (contacts/imports/) ---------------------------------------------------------------


class ImportJob(TenantOwnedModel):
    """One CSV/XLSX import: the sealed upload, the column mapping, progress and the outcome.

    The uploaded file holds PHI: it is stored sealed with its own object key (ImportUploadChunk) and
    shredded when the job ends or after a week. A first pass over the file cuts it into slices
    (ImportSlice) that workers import in parallel, one transaction each; the counts here move in the
    same transaction as each slice's writes, so a retried slice never counts twice.
    """

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Waiting for column mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Finished"
        FAILED = "failed", "Failed"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel (XLSX)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    file_format = models.CharField(max_length=8, choices=Format.choices)
    file_name = models.CharField(max_length=200, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    # The upload's own key; null once shredded (the sealed chunks are deleted with it).
    object_key_id = models.UUIDField(null=True, blank=True)
    shredded_at = models.DateTimeField(null=True, blank=True)
    encoding = models.CharField(max_length=16, blank=True)
    delimiter = models.CharField(max_length=1, blank=True)
    # The header row, sealed with the upload's key and shredded with it: a file without a header row
    # puts a patient's values there. Only the number of columns stays readable.
    headers_sealed = models.BinaryField(null=True, blank=True)
    column_count = models.PositiveSmallIntegerField(default=0)
    mapping = models.JSONField(default=dict, blank=True, help_text="Column index → target field key.")
    options = models.JSONField(default=dict, blank=True)
    dry_run = models.BooleanField(default=False)

    total_rows = models.PositiveIntegerField(null=True, blank=True)
    last_committed_row = models.PositiveIntegerField(default=0, help_text="Data rows done.")
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    # Rows written for an importer without PHI access, who is not told created from updated.
    accepted_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    failure_reason = models.CharField(max_length=500, blank=True)

    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Where the first pass starts cutting the file into slices: a byte offset (CSV) or a row count
    # (XLSX); 0, except for a job an earlier version had started importing row by row.
    resume_position = models.BigIntegerField(default=0)
    # Set by every committed slice; a job queued or running without one for a while is re-enqueued.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Times the sweep found the job stuck at the same row; after a few it fails with that reason.
    stalled_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "status"], name="import_job_status")]

    def __str__(self) -> str:
        return f"import {self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def processed_rows(self) -> int:
        """Rows that ended in a total; equals total_rows once the job succeeded."""
        return (
            self.created_count
            + self.updated_count
            + self.unchanged_count
            + self.accepted_count
            + self.error_count
        )


class ImportSlice(TenantOwnedModel):
    """A run of consecutive rows of an import job, imported by one worker task in one transaction.

    Cut by the job's first pass at row boundaries; a worker claims it with `FOR UPDATE SKIP LOCKED`
    (so a duplicate task skips it) and marks it done in the transaction that writes its contacts."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="slices")
    index = models.PositiveIntegerField()
    # Where its rows start: a byte offset at a row boundary (CSV) or data rows to skip (XLSX).
    start_position = models.BigIntegerField()
    first_row = models.PositiveIntegerField(help_text="Spreadsheet row number of its first row.")
    row_count = models.PositiveIntegerField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    # Rows written for an importer without PHI access, who is not told created from updated.
    accepted_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "job", "index"], name="import_slice_unique_index")
        ]
        indexes = [models.Index(fields=["tenant", "job", "state"], name="import_slice_state")]

    def __str__(self) -> str:
        return f"slice {self.index} of {self.job_id}"


class ImportUploadChunk(TenantOwnedModel):
    """One sealed piece of an uploaded file (fixed plaintext size, except the last)."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "job", "index"], name="import_chunk_unique_index")
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of {self.job_id}"


class ImportRowError(TenantOwnedModel):
    """Why one row (or one cell) was not imported. The column is its position (its name comes from
    the file and may be a value); messages name the field, never the value."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField(help_text="Spreadsheet row: the header is row 1.")
    column_index = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500)

    class Meta:
        ordering = ["row_number", "id"]
        indexes = [models.Index(fields=["tenant", "job", "row_number"], name="import_row_error_row")]

    def __str__(self) -> str:
        return f"row {self.row_number} of {self.job_id}"
