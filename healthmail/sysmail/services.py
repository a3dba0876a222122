"""Queue, send and retry system mail (see models.py for why it goes through a table).

    system_mail_queue(tenant=tenant, topic="retention.hold_notice", users=[custodian],
                      subject="...", body="...", source_ids=[hold.pk])

Call it inside the transaction of the business write: the rows commit with it, a task per row is
enqueued after commit, and the periodic sweep retries with backoff and jitter until the row is sent
or its lifetime is over. A send is claimed with a compare-and-set on the row, so two workers (or a
task the broker delivered twice) never send the same row twice while its claim holds.
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
import secrets
import smtplib
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import SystemMail

if TYPE_CHECKING:
    # The AUTH_USER_MODEL, as django-stubs name it: sysmail is below accounts and cannot import it.
    from django.contrib.auth.models import _User

logger = logging.getLogger(__name__)
SWEEP_BATCH = 500
_HEADER_BREAKS = re.compile(r"[\r\n\0]")
_random = secrets.SystemRandom()


def _enqueue(tenant_id: uuid.UUID, mail_id: uuid.UUID) -> None:
    from . import tasks  # tasks imports this module

    tasks.transactional_system_mail_send.apply_async(
        kwargs={"tenant_id": str(tenant_id), "mail_id": str(mail_id)}
    )


def system_mail_queue(
    *,
    tenant: Tenant,
    topic: str,
    subject: str,
    body: str,
    users: Iterable[_User] = (),
    source_ids: Sequence[uuid.UUID | str] = (),
    lifetime: datetime.timedelta | None = None,
) -> list[SystemMail]:
    """One row per staff user, sent after the caller commits. Staff only, by construction: mail to a
    patient leaves from the tenant's own domain through the delivery engine (delivery.patient_mail)."""
    # CPython's email package has let header injection through before (CVE-2024-6923): the subject
    # never carries a line break or NUL (a tenant name could), and an address with one is a bug.
    subject = " ".join(_HEADER_BREAKS.sub(" ", subject).split())
    users = list(users)
    if any(_HEADER_BREAKS.search(u.email) for u in users):
        raise ValueError("A system mail address contains a line break or NUL.")
    now = timezone.now()
    expires_at = now + (lifetime or datetime.timedelta(seconds=settings.SYSTEM_MAIL_LIFETIME_SECONDS))
    common = {
        "tenant_id": tenant.pk,
        "topic": topic,
        "source_ids": [str(s) for s in source_ids],
        "content": {"subject": subject, "body": body},
        "created_at": now,
        "next_attempt_at": now,
        "expires_at": expires_at,
    }
    rows = [SystemMail(recipient_user=user, to_address=user.email, **common) for user in users]
    if not rows:
        return []
    with tenant_context(tenant):
        SystemMail.objects.bulk_create(rows)  # ids are made client-side: each field is sealed to its row
    for row in rows:
        # robust: a broker outage must not turn the committed write into an error; the sweep sends it
        transaction.on_commit(functools.partial(_enqueue, row.tenant_id, row.pk), robust=True)
    return rows


def retry_delay(attempt: int) -> datetime.timedelta:
    """Exponential backoff from SYSTEM_MAIL_RETRY_FIRST_SECONDS, capped, with "equal jitter" (half
    fixed, half random) so mail queued together during an outage does not retry in lockstep."""
    first, cap = settings.SYSTEM_MAIL_RETRY_FIRST_SECONDS, settings.SYSTEM_MAIL_RETRY_MAX_SECONDS
    delay = min(cap, first * 2 ** max(0, attempt - 1))
    return datetime.timedelta(seconds=delay / 2 + _random.uniform(0, delay / 2))


def _claim(tenant_id: uuid.UUID, mail_id: uuid.UUID) -> SystemMail | None:
    now = timezone.now()
    lease = datetime.timedelta(seconds=settings.SYSTEM_MAIL_LEASE_SECONDS)
    due = Q(state__in=[SystemMail.State.QUEUED, SystemMail.State.RETRYING], next_attempt_at__lte=now)
    abandoned = Q(state=SystemMail.State.SENDING, claimed_until__lt=now)  # its worker died mid-send
    with tenant_context(tenant_id):
        claimed = (
            SystemMail.objects.filter(Q(pk=mail_id) & (due | abandoned))
            .filter(expires_at__gt=now)
            .update(state=SystemMail.State.SENDING, claimed_until=now + lease, attempts=F("attempts") + 1)
        )
        if claimed != 1:
            return None
        mail = SystemMail.objects.get(pk=mail_id)
        mail.to_address, mail.content  # noqa: B018 - open the sealed fields while the context holds
    return mail


def _send(mail: SystemMail) -> None:
    connection = get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
    EmailMessage(
        subject=mail.content["subject"],
        body=mail.content["body"],
        from_email=None,
        to=[mail.to_address],
        connection=connection,
    ).send()


def _permanent(error: Exception) -> str:
    """The SMTP reply code when the server refused this very mail for good (5xx to its recipient or
    its content), or "" when it is worth retrying. Refusals of our own set-up (authentication, the
    sender address) are retried too: an operator fixes them, and the mail should then still go."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return f"SMTP {codes[0]}" if codes and all(500 <= c < 600 for c in codes) else ""
    if isinstance(error, smtplib.SMTPDataError) and 500 <= error.smtp_code < 600:
        return f"SMTP {error.smtp_code}"
    return ""


def _describe(error: Exception) -> str:
    """For the status pages: what went wrong, in words an officer can pass on to the operator."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return f"SMTP {codes[0]}" if codes else "recipient refused"
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"SMTP {error.smtp_code}: the mail server refused our credentials"
    code = getattr(error, "smtp_code", None)
    if isinstance(code, int):
        return f"SMTP {code}"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return "mail server disconnected"
    if isinstance(error, TimeoutError):
        return "mail server timed out"
    return f"mail server unreachable ({type(error).__name__})"


def _finish(mail: SystemMail, state: str, error: str = "") -> None:
    """A final state; the sealed address and content are wiped (nothing left to send)."""
    SystemMail.objects.filter(pk=mail.pk).update(
        state=state,
        finished_at=timezone.now(),
        claimed_until=None,
        last_error=error[:120],
        content=None,
        to_address=None,
    )


def system_mail_send(*, tenant_id: uuid.UUID, mail_id: uuid.UUID) -> str | None:
    """One attempt at one row. Returns its new state, or None when it was not due (or is gone)."""
    mail = _claim(tenant_id, mail_id)
    if mail is None:
        return None
    try:
        _send(mail)
    except ValueError:  # Django refused to build it (a header it will not send): no retry can help
        with tenant_context(tenant_id):
            _finish(mail, SystemMail.State.FAILED, "invalid message")
        logger.error("system mail invalid", extra={"mail_id": str(mail.pk), "topic": mail.topic})
        return SystemMail.State.FAILED
    except (smtplib.SMTPException, OSError) as error:
        permanent = _permanent(error)
        with tenant_context(tenant_id):
            if permanent:
                _finish(mail, SystemMail.State.FAILED, f"refused: {permanent}")
                logger.warning("system mail refused", extra={"mail_id": str(mail.pk), "topic": mail.topic})
                return SystemMail.State.FAILED
            next_attempt_at = timezone.now() + retry_delay(mail.attempts)
            if next_attempt_at >= mail.expires_at:
                _finish(mail, SystemMail.State.FAILED, f"gave up after {mail.attempts}: {_describe(error)}")
                logger.error("system mail gave up", extra={"mail_id": str(mail.pk), "topic": mail.topic})
                return SystemMail.State.FAILED
            SystemMail.objects.filter(pk=mail.pk).update(
                state=SystemMail.State.RETRYING,
                next_attempt_at=next_attempt_at,
                claimed_until=None,
                last_error=_describe(error)[:120],
            )
        logger.info("system mail will be retried", extra={"mail_id": str(mail.pk), "topic": mail.topic})
        return SystemMail.State.RETRYING
    with tenant_context(tenant_id):
        _finish(mail, SystemMail.State.SENT)
    return SystemMail.State.SENT


def system_mail_sweep_tenant(*, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    """Fail rows past their lifetime; return the rows due for an attempt (retries, lost tasks,
    abandoned claims)."""
    now = timezone.now()
    with tenant_context(tenant_id):
        open_rows = SystemMail.objects.filter(
            tenant_id=tenant_id,
            state__in=[SystemMail.State.QUEUED, SystemMail.State.RETRYING, SystemMail.State.SENDING],
        )
        expired = open_rows.filter(expires_at__lte=now).exclude(
            state=SystemMail.State.SENDING, claimed_until__gte=now
        )
        for mail in expired:
            _finish(mail, SystemMail.State.FAILED, f"lifetime over after {mail.attempts} attempts")
            logger.error("system mail expired", extra={"mail_id": str(mail.pk), "topic": mail.topic})
        due = open_rows.filter(expires_at__gt=now).filter(
            Q(state__in=[SystemMail.State.QUEUED, SystemMail.State.RETRYING], next_attempt_at__lte=now)
            | Q(state=SystemMail.State.SENDING, claimed_until__lt=now)
        )
        return list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:SWEEP_BATCH])


def system_mail_sweep() -> int:
    """Enqueue every due row of every tenant. Returns how many were enqueued."""
    enqueued = 0
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        for mail_id in system_mail_sweep_tenant(tenant_id=tenant_id):
            _enqueue(tenant_id, mail_id)
            enqueued += 1
    return enqueued
