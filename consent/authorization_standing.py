"""Where a contact stands with their authorizations of one kind, now: the gate's authorization rule.

Each stored authorization is validated again (consent.authorization_rules) every time the gate
asks, so one whose date has passed is refused the next day without any task having run. Both forms
of the gate load the same columns (AUTHORIZATION_FIELDS; the batch form as JSON) and call
authorization_standing(). It never decrypts: a stored signature or authority is present when its
column is not null (recording refuses blank ones).

Refusal codes (a contract, see docs/authorizations.md):
- no_authorization: none of this kind was ever recorded for the contact;
- authorization_not_yet_effective: valid, but a state waiting period has not ended;
- authorization_expired (on: the expiration date, or the day the end event occurred);
- authorization_revoked (on: the day the revocation was received);
- authorization_defective (defects: the validator's codes).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Q

from . import authorization_rules as rules
from .models import AUTHORIZATION_TEXT_ELEMENTS, AuthorizationText


@dataclass(frozen=True)
class Standing:
    code: str
    reason: str
    defects: tuple[str, ...] = ()
    on: datetime.date | None = None


# The columns both gates read, in this order (the batch SQL builds the same array).
AUTHORIZATION_FIELDS = (
    "id",
    "text_id",
    "signed_on",
    "has_signature",
    "by_representative",
    "has_authority",
    "initiated_by",
    "combined_with",
    "conditioned_on",
    "expires_on",
    "expires_at",
    "expiry_event",
    "expiry_event_occurred_on",
    "revoked_at",
    "known_false",
    "status",
    "effective_from",
    "signed_at",
)


def presence_annotations() -> dict[str, ExpressionWrapper[Q]]:
    return {
        "has_signature": ExpressionWrapper(Q(signer_name__isnull=False), output_field=BooleanField()),
        "has_authority": ExpressionWrapper(
            Q(representative_authority__isnull=False), output_field=BooleanField()
        ),
    }


def _uuid(value: object) -> uuid.UUID:
    return uuid.UUID(str(value))


def _date(value: Any) -> Any:
    return datetime.date.fromisoformat(value) if isinstance(value, str) else value


def _instant(value: Any) -> Any:
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value


def from_json(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row of the batch query's json_agg, with the types the ORM gives."""
    converters: tuple[Callable[[Any], Any] | None, ...] = (
        _uuid,
        _uuid,
        _date,
        *[None] * 6,
        _date,
        _instant,
        None,
        _date,
        _instant,
        None,
        None,
    )
    converters += (_instant, _instant)
    pairs = zip(converters, row, strict=True)
    return tuple(value if convert is None or value is None else convert(value) for convert, value in pairs)


def texts_load(
    *, tenant_id: uuid.UUID, text_ids: set[uuid.UUID], cache: dict[uuid.UUID, AuthorizationText]
) -> None:
    """Fill `cache` with the texts it lacks, in one query."""
    missing = {text_id for text_id in text_ids if text_id not in cache}
    if missing:
        for text in AuthorizationText.objects.filter(tenant_id=tenant_id, pk__in=missing):
            cache[text.pk] = text


def stored_form(row: Sequence[Any], text: AuthorizationText, zone: datetime.tzinfo) -> rules.SignedForm:
    """The form the validator reads from a row of AUTHORIZATION_FIELDS (no decryption)."""
    (_, _, signed_on, signed, by_rep, authority, initiated, combined, conditioned, expires_on,
     expires_at, event, event_on, revoked_at, known_false, status, _, _) = row  # fmt: skip
    if expires_on is None and expires_at is not None:
        # Recorded before calendar dates were kept: the last day it allowed anything.
        expires_on = (expires_at - datetime.timedelta(microseconds=1)).astimezone(zone).date()
    return rules.SignedForm(
        kind=text.kind,
        **{name: getattr(text, name) for name in AUTHORIZATION_TEXT_ELEMENTS},
        remuneration_involved=text.remuneration_involved,
        remuneration_statement=text.remuneration_statement,
        extra_text="\n".join([text.media_use, text.media_distribution, text.media_duration]),
        expires_on=expires_on,
        expiry_event=event,
        expiry_event_occurred_on=event_on,
        signer_name="signed" if signed else "",
        signed_on=signed_on,
        by_representative=by_rep,
        representative_authority="stated" if authority else "",
        initiated_by=initiated,
        combined_with=frozenset(combined),
        conditioned_on=frozenset(conditioned),
        revoked_on=revoked_at.astimezone(zone).date() if revoked_at else None,
        known_false=known_false or status == "invalid",
    )


def _end(form: rules.SignedForm, codes: list[str]) -> Standing:
    if "revoked" in codes:
        return Standing(
            "authorization_revoked",
            "The HIPAA authorization was revoked (45 CFR 164.508(b)(5)).",
            on=form.revoked_on,
        )
    if "expired" in codes:
        on = form.expires_on if form.expiry_event_occurred_on is None else form.expiry_event_occurred_on
        return Standing(
            "authorization_expired",
            "The HIPAA authorization has expired (45 CFR 164.508(b)(2)(i)).",
            on=on,
        )
    return Standing(
        "authorization_defective",
        "The HIPAA authorization is not valid: " + ", ".join(codes) + " (45 CFR 164.508(b)(2)).",
        defects=tuple(codes),
    )


def authorization_standing(
    *,
    rows: Sequence[Sequence[Any]],
    texts: dict[uuid.UUID, AuthorizationText],
    tenant_id: uuid.UUID,
    now: datetime.datetime,
    today: datetime.date,
    zone: datetime.tzinfo,
) -> Standing | None:
    """None when one authorization allows the use now; else why not, from the most recent one."""
    if not rows:
        return Standing(
            "no_authorization",
            "Email that uses PHI for this purpose needs a valid HIPAA authorization "
            "(45 CFR 164.508(a)(3)); none was recorded.",
        )
    texts_load(tenant_id=tenant_id, text_ids={row[1] for row in rows}, cache=texts)
    pending = False
    latest: tuple[datetime.datetime, Standing] | None = None
    for row in rows:
        form = stored_form(row, texts[row[1]], zone)
        codes = [d.code for d in rules.authorization_defects(form=form, today=today)]
        expires_at = row[10]
        if not codes and expires_at is not None and expires_at <= now:
            codes = ["expired"]  # an instant recorded before calendar dates were kept
        if not codes:
            if row[16] <= now:
                return None
            pending = True
            continue
        if latest is None or row[17] > latest[0]:
            latest = (row[17], _end(form, codes))
    if pending or latest is None:
        return Standing(
            "authorization_not_yet_effective",
            "The authorization is signed but not yet in effect (state waiting period).",
        )
    return latest[1]
