"""Denials of access and fees (45 CFR 164.524(a)(2)-(4), (c)(4), (d)).

| paragraph | rule here |
|---|---|
| (a)(2)(i)-(v) | unreviewable grounds: the denial stands, no review is offered |
| (a)(3)(i)-(iii) | reviewable grounds: a licensed health care professional's determination (a clinical |
|  | reviewer of the organization, with their license) is recorded with the denial |
| (a)(4), (d)(4) | review by a licensed professional designated as reviewing official, who took no part in |
|  | the denial (another clinical reviewer, not the one who determined, not the officer who denied); |
|  | the organization acts on the determination and tells the individual in writing |
| (d)(1) | a denial in part: the rest is still delivered (the package can go out) |
| (d)(2) | a timely written denial in plain language: (i) the basis; (ii) for a reviewable ground, the |
|  | review rights and how to exercise them; (iii) how to complain to the organization and to the |
|  | Secretary, with the contact's name or title and telephone number |
| (c)(4) | a reasonable, cost-based fee of only: (i) labor for copying; (ii) supplies for paper or |
|  | portable media; (iii) postage when mailed; (iv) preparing a summary the individual agreed to |

The written denial and the review's determination go to the patient as portal messages."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.html import escape

from audit.phi import phi_access
from contacts.models import Contact
from delivery.models import EncryptionPolicy, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from delivery.patient_mail import PatientMailUnavailable
from delivery.sender_domains.selectors import sender_domain_verified
from healthmail.accounts.models import Membership
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict, PermissionRefused
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .access_requests import access_request_audit
from .models import AccessDenial, AccessFee, AccessRequest
from .services import require_officer

SOURCE_TYPE = "access_denial"
PURPOSE = "written denial of access (164.524(d))"
SECRETARY = (
    "You may also complain to the Secretary of Health and Human Services, Office for Civil Rights, "
    "at https://www.hhs.gov/ocr/complaints or 1-800-368-1019."
)


def _send(tenant: Tenant, user, request: AccessRequest, subject: str, text: str):
    """A portal message to the patient (the email is only a notice); refused without an address."""
    sender_domain = sender_domain_verified(tenant=tenant)
    if sender_domain is None:
        raise PatientMailUnavailable(
            "The organization has no verified sender domain: the letter cannot be sent yet.",
            code="sender_domain_unverified",
        )
    contact = Contact.objects.get(tenant=tenant, pk=request.contact_id)
    with phi_access(
        actor=Actor.for_user(user), tenant=tenant, objects=[contact], fields=["email"], purpose=PURPOSE
    ):
        address = (contact.email or "").strip()
    if "@" not in address:
        raise ApplicationError(
            "The patient has no email address: send the letter another way.", code="no_address"
        )
    [message] = message_enqueue_many(
        tenant=tenant,
        stream=Stream.TRANSACTIONAL,
        source_type=SOURCE_TYPE,
        source_id=str(request.pk),
        purpose="operations",
        recipients=[OutboxRecipient(contact.pk, address)],
        uses_phi=True,
        encryption_policy=EncryptionPolicy.PORTAL_ALWAYS,
        sender_domain=sender_domain,
        content=RenderedContent(subject=subject, html=f"<pre>{escape(text)}</pre>", text=text),
    )
    return message


def denial_letter(tenant: Tenant, denial: AccessDenial) -> str:
    """(d)(2): plain language; the basis, the review rights when reviewable, how to complain."""
    scope = "part of your request" if denial.in_part else "your request"
    lines = [
        f"{tenant.name} has denied {scope} for access to your health information.",
        "",
        f"Why: {denial.get_ground_display()}. {denial.basis}",
    ]
    if denial.in_part:
        lines += ["", "You will receive the rest of the information you asked for."]
    if denial.reviewable:
        lines += [
            "",
            "Your right to a review: you may ask that a licensed health care professional who did not take "
            "part in this decision review it. To ask, contact "
            f"{denial.complaint_contact} at {denial.complaint_phone}. We will follow that professional's "
            "decision and tell you in writing.",
        ]
    lines += [
        "",
        f"To complain to us, contact {denial.complaint_contact} at {denial.complaint_phone}. {SECRETARY}",
        "",
        tenant.name,
        tenant.postal_address,
    ]
    return "\n".join(lines)


def _clinical_reviewer(tenant: Tenant, user_id):
    member = (
        Membership.objects.for_tenant(tenant)
        .filter(user_id=user_id, role=Role.CLINICAL_REVIEWER, is_active=True)
        .select_related("user")
        .first()
    )
    if member is None:
        raise ApplicationError(
            "A reviewable ground needs the determination of a licensed health care professional: "
            "choose one of the organization's clinical reviewers.",
            code="determined_by",
        )
    return member.user


@transaction.atomic
def denial_record(
    *,
    tenant: Tenant,
    user,
    role: str | None,
    request: AccessRequest,
    ground: str,
    basis: str,
    complaint_contact: str,
    complaint_phone: str,
    in_part: bool = False,
    determined_by_id=None,
    determined_license: str = "",
) -> AccessDenial:
    require_officer(role)
    if ground not in AccessDenial.Ground.values:
        raise ApplicationError(
            "Choose the ground of 164.524(a)(2) or (a)(3) the denial rests on.", code="ground"
        )
    if len(basis.strip()) < 20:
        raise ApplicationError("Explain the basis in plain language (at least 20 characters).", code="basis")
    if not complaint_contact.strip() or not complaint_phone.strip():
        raise ApplicationError(
            "Name the contact person or office for complaints and its telephone number (d)(2)(iii).",
            code="complaint_contact",
        )
    with tenant_context(tenant):
        professional = None
        if ground.startswith("a3"):
            professional = _clinical_reviewer(tenant, determined_by_id)
            if not determined_license.strip():
                raise ApplicationError("Give the professional's license.", code="determined_license")
        if request.status in (AccessRequest.Status.DELIVERED, AccessRequest.Status.DENIED):
            raise Conflict("This request was already answered.")
        denial = AccessDenial.objects.create(
            tenant=tenant,
            request=request,
            in_part=in_part,
            ground=ground,
            basis=basis.strip(),
            complaint_contact=complaint_contact.strip()[:200],
            complaint_phone=complaint_phone.strip()[:40],
            determined_by=professional,
            determined_license=determined_license.strip()[:100] if professional else "",
            denied_by=user,
        )
        message = _send(
            tenant, user, request, f"Your request for access to {tenant.name}", denial_letter(tenant, denial)
        )
        AccessDenial.objects.filter(pk=denial.pk).update(message_id=message.pk)
        if not in_part:
            AccessRequest.objects.filter(pk=request.pk).update(status=AccessRequest.Status.DENIED)
        access_request_audit(
            request, user, "access_request.deny", ground=ground, in_part=in_part, message=str(message.pk)
        )
        denial.refresh_from_db()
    return denial


@transaction.atomic
def denial_review_request(*, tenant: Tenant, user, role: str | None, denial: AccessDenial) -> AccessDenial:
    """The individual asked for a review: only a reviewable ground has one ((a)(2) has none)."""
    require_officer(role)
    if not denial.reviewable:
        raise Conflict("This denial rests on an unreviewable ground (164.524(a)(2)): there is no review.")
    with tenant_context(tenant):
        updated = AccessDenial.objects.filter(pk=denial.pk, review_requested_at__isnull=True).update(
            review_requested_at=timezone.now()
        )
        if updated != 1:
            raise Conflict("A review was already requested.")
        denial.refresh_from_db()
        access_request_audit(denial.request, user, "access_request.review_request")
    return denial


@transaction.atomic
def denial_review_decide(
    *, tenant: Tenant, user, role: str | None, denial: AccessDenial, outcome: str, license: str, reason: str
) -> AccessDenial:
    """(a)(4), (d)(4): a clinical reviewer who took no part in the denial decides; the organization
    follows the decision (a granted review reopens the request) and tells the individual in writing."""
    if role != Role.CLINICAL_REVIEWER:
        raise PermissionRefused(
            "Only a licensed health care professional (a clinical reviewer) reviews a denial."
        )
    if user.pk in (denial.determined_by_id, denial.denied_by_id):
        raise PermissionRefused("The reviewing official must not have taken part in the denial.")
    if outcome not in AccessDenial.Outcome.values:
        raise ApplicationError("Uphold the denial or provide access.", code="outcome")
    if not license.strip() or len(reason.strip()) < 20:
        raise ApplicationError("Give your license and your reasons (at least 20 characters).", code="reason")
    with tenant_context(tenant):
        updated = AccessDenial.objects.filter(
            pk=denial.pk, review_requested_at__isnull=False, reviewed_at__isnull=True
        ).update(
            reviewed_by=user,
            reviewer_license=license.strip()[:100],
            review_outcome=outcome,
            review_reason=reason.strip(),
            reviewed_at=timezone.now(),
        )
        if updated != 1:
            raise Conflict("No review is waiting on this denial.")
        denial.refresh_from_db()
        request = denial.request
        if outcome == AccessDenial.Outcome.GRANTED:
            AccessRequest.objects.filter(pk=request.pk, status=AccessRequest.Status.DENIED).update(
                status=AccessRequest.Status.OPEN
            )
        verdict = (
            "upheld the denial"
            if outcome == AccessDenial.Outcome.UPHELD
            else "decided you will be given access"
        )
        text = (
            f"A licensed health care professional who did not take part in the decision reviewed the denial "
            f"of your request and {verdict}.\n\n{reason.strip()}\n\n{SECRETARY}\n\n{tenant.name}"
        )
        _send(tenant, user, request, f"The review of your access request at {tenant.name}", text)
        access_request_audit(request, user, "access_request.review_decide", outcome=outcome)
    return denial


@dataclass(frozen=True)
class FeeInput:
    copy_form: str
    mailed: bool = False
    summary_agreed: bool = False
    labor_cents: int = 0
    supplies_cents: int = 0
    postage_cents: int = 0
    summary_cents: int = 0


def _fee_problems(fee: FeeInput) -> str:
    if fee.copy_form not in AccessFee.CopyForm.values:
        return "Choose the form of the copy."
    if min(fee.labor_cents, fee.supplies_cents, fee.postage_cents, fee.summary_cents) < 0:
        return "Amounts cannot be negative."
    if fee.supplies_cents and fee.copy_form == AccessFee.CopyForm.PORTAL:
        return "Supplies are charged only for a paper copy or portable media (164.524(c)(4)(ii))."
    if fee.postage_cents and not fee.mailed:
        return "Postage is charged only when the individual asked for the copy to be mailed ((c)(4)(iii))."
    if fee.summary_cents and not fee.summary_agreed:
        return "A summary is charged only when the individual agreed to one ((c)(4)(iv))."
    return ""


@transaction.atomic
def fee_record(*, tenant: Tenant, user, role: str | None, request: AccessRequest, fee: FeeInput) -> AccessFee:
    """(c)(4): the fee holds only the permitted costs; FeeInput has no field for searching or
    retrieving the information, which the rule leaves out."""
    require_officer(role)
    problem = _fee_problems(fee)
    if problem:
        raise ApplicationError(problem, code="fee")
    with tenant_context(tenant):
        if AccessFee.objects.filter(tenant=tenant, request=request).exists():
            raise Conflict("A fee was already recorded for this request.")
        total = fee.labor_cents + fee.supplies_cents + fee.postage_cents + fee.summary_cents
        recorded = AccessFee.objects.create(
            tenant=tenant, request=request, total_cents=total, recorded_by=user, **fee.__dict__
        )
        access_request_audit(request, user, "access_request.fee", total_cents=total)
    return recorded
