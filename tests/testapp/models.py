"""A tenant-owned model with encrypted fields, installed only in tests, to exercise the crypto
layer before the domain apps bring their own."""

import uuid

from django.db import models

from healthmail.crypto.fields import EncryptedJSONField, EncryptedTextField, PhiClass
from healthmail.tenants.models import TenantOwnedModel


class SecretNote(TenantOwnedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    body = EncryptedTextField(phi_class=PhiClass.IDENTIFIER)
    clinical = EncryptedJSONField(phi_class=PhiClass.CLINICAL, null=True, blank=True)
    label = models.CharField(max_length=50, blank=True)
