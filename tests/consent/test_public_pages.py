"""Patient pages behind signed links: forged and expired links, signing (once), the preference
center with evidence, and RFC 8058 one-click unsubscribe without CSRF or login."""

from __future__ import annotations

import base64
import datetime
import re
import struct
import time

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from consent import links, services
from consent.gate import may_send
from consent.models import (
    Authorization,
    ConsentEvent,
    ConsentState,
    PreferenceChange,
    Suppression,
)
from consent.tokens import LinkInvalid, LinkKind, link_read, link_token
from healthmail.crypto.sealed import seal
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events
from tests.delivery.patient_mail import patient_mail, patient_sender

from .conftest import evidence, sign
from .scenarios import topic_for

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 (iPhone) test"
# Research and fundraising are opt-out based: shown ticked, and left ticked they record nothing.
KEEP_OPT_OUT_TOPICS = {"topic_research": "on", "topic_fundraising": "on"}


def _client() -> Client:
    return Client(enforce_csrf_checks=False, HTTP_USER_AGENT=UA, REMOTE_ADDR="198.51.100.7")


def _url(kind: str, tenant, contact, **kwargs) -> str:
    token = link_token(kind, tenant_id=tenant.pk, contact_id=contact.pk, **kwargs)
    return reverse(f"consent_public:{kind}", args=[token])


def _assert_friendly(response, status: int):
    assert response.status_code == status
    body = response.content.decode()
    for leak in ("Traceback", "Exception", "Synthetic Clinic", "signing"):
        assert leak not in body
    return body


@pytest.mark.parametrize("kind", [LinkKind.AUTHORIZE, LinkKind.PREFERENCES, LinkKind.UNSUBSCRIBE])
def test_forged_links_get_a_friendly_refusal_and_are_audited(tenant_a, contact, text, kind):
    genuine = link_token(kind, tenant_id=tenant_a.pk, contact_id=contact.pk, text_id=text.pk)
    forged = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    other_kind = link_token(
        LinkKind.PREFERENCES if kind != LinkKind.PREFERENCES else LinkKind.AUTHORIZE,
        tenant_id=tenant_a.pk,
        contact_id=contact.pk,
    )
    for token in (forged, other_kind, "garbage", "x" * 500):
        for method in ("get", "post"):
            response = getattr(_client(), method)(reverse(f"consent_public:{kind}", args=[token]))
            body = _assert_friendly(response, 400)
            assert "not valid" in body
    assert len(audit_events(action="consent.link_rejected")) == 8


def test_an_expired_link_is_refused_with_403_and_audited_under_its_tenant(tenant_a, contact, monkeypatch):
    url = _url(LinkKind.PREFERENCES, tenant_a, contact)
    monkeypatch.setitem(
        __import__("consent.tokens", fromlist=["MAX_AGE"]).MAX_AGE,
        LinkKind.PREFERENCES,
        datetime.timedelta(seconds=-1),
    )
    body = _assert_friendly(_client().get(url), 403)
    assert "expired" in body
    [event] = audit_events(tenant=tenant_a, action="consent.link_rejected")
    assert event.reason == "link_expired"


def test_a_link_to_a_deleted_contact_is_no_longer_valid(tenant_a, contact):
    url = _url(LinkKind.PREFERENCES, tenant_a, contact)
    with tenant_context(tenant_a):
        type(contact).objects.filter(pk=contact.pk).update(deleted_at=datetime.datetime.now(datetime.UTC))
    _assert_friendly(_client().get(url), 400)


def test_a_link_signed_with_another_key_is_forged(tenant_a, contact, settings):
    settings.SECRET_KEY = "another-deployment"
    token = link_token(LinkKind.PREFERENCES, tenant_id=tenant_a.pk, contact_id=contact.pk)
    settings.SECRET_KEY = "test-only-key"
    with pytest.raises(LinkInvalid):
        link_read(LinkKind.PREFERENCES, token)
    _assert_friendly(_client().get(reverse("consent_public:preferences", args=[token])), 400)


def test_the_signing_page_is_branded_and_shows_the_whole_text(tenant_a, contact, text):
    response = _client().get(_url(LinkKind.AUTHORIZE, tenant_a, contact, text_id=text.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert tenant_a.name in body
    assert tenant_a.postal_address in body
    for value in (
        "phi_description",
        "recipients",
        "revocation_rights",
        "conditioning_statement",
        "redisclosure_statement",
    ):
        assert escape(getattr(text, value)) in body
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "same-origin"


def test_signing_records_once_even_when_submitted_twice(tenant_a, contact, text):
    url = _url(LinkKind.AUTHORIZE, tenant_a, contact, text_id=text.pk)
    client = _client()
    form = {"signer_name": "Pat Example", "signed_on": timezone.localdate().isoformat(), "intent": "on"}
    first = client.post(url, form)
    second = client.post(url, form)
    assert first.status_code == 302
    assert second.status_code == 200
    assert "signed" in second.content.decode()
    with tenant_context(tenant_a):
        [authorization] = Authorization.objects.all()
    assert (authorization.ip_address, authorization.user_agent, authorization.source) == (
        "198.51.100.7",
        UA,
        "web_form",
    )
    assert may_send(contact=contact, purpose="treatment", uses_phi=True).allowed


def test_signing_without_intent_shows_the_error_and_records_nothing(tenant_a, contact, text):
    url = _url(LinkKind.AUTHORIZE, tenant_a, contact, text_id=text.pk)
    response = _client().post(
        url, {"signer_name": "Pat Example", "signed_on": timezone.localdate().isoformat()}
    )
    assert response.status_code == 400
    assert "Tick this box to sign." in response.content.decode()
    with tenant_context(tenant_a):
        assert not Authorization.objects.exists()


def test_preference_center_records_each_change_with_evidence(tenant_a, contact, topics):
    url = _url(LinkKind.PREFERENCES, tenant_a, contact)
    client = _client()
    assert client.get(url).status_code == 200
    pause = (timezone.localdate() + datetime.timedelta(days=20)).isoformat()
    response = client.post(
        url,
        {
            "action": "save",
            **KEEP_OPT_OUT_TOPICS,
            "topic_marketing_newsletters": "on",
            "frequency": "monthly",
            "paused_until": pause,
        },
    )
    assert response.status_code == 302
    client.post(
        url,
        {
            "action": "save",
            **KEEP_OPT_OUT_TOPICS,
            "topic_marketing_newsletters": "on",
            "frequency": "monthly",
            "paused_until": pause,
        },
    )
    with tenant_context(tenant_a):
        [event] = ConsentEvent.objects.filter(contact=contact).select_related("topic", "text")
        changes = sorted(PreferenceChange.objects.filter(contact=contact).values_list("field", "value"))
    assert (event.kind, event.topic.key, event.source) == ("granted", "marketing_newsletters", "web_form")
    assert (event.ip_address, event.user_agent, event.actor_type) == ("198.51.100.7", UA, "recipient")
    assert event.text.kind == "preference_center"
    assert changes == [("frequency", "monthly"), ("paused_until", pause)]
    topic = topics["marketing_newsletters"]
    assert may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).code == "paused"


def test_opt_out_topics_show_ticked_and_unticking_records_the_opt_out(tenant_a, contact, topics):
    url = _url(LinkKind.PREFERENCES, tenant_a, contact)
    form = _client().get(url).context["form"]
    assert form.initial["topic_research"] is True
    assert form.initial["topic_marketing_newsletters"] is False
    _client().post(url, {"action": "save", "topic_fundraising": "on", "frequency": "as_published"})
    with tenant_context(tenant_a):
        kinds = list(ConsentEvent.objects.filter(contact=contact).values_list("topic__key", "kind"))
    assert kinds == [("research", "revoked")]
    assert may_send(contact=contact, purpose="research", uses_phi=False).code == "opted_out"
    assert may_send(contact=contact, purpose="fundraising", uses_phi=False).allowed


def test_revoking_an_authorization_in_the_preference_center(tenant_a, contact, text):
    authorization, _ = sign(tenant_a, contact, text)
    url = _url(LinkKind.PREFERENCES, tenant_a, contact)
    assert text.title in _client().get(url).content.decode()
    response = _client().post(url, {"action": "revoke", "authorization": str(authorization.pk)})
    assert response.status_code == 302
    with tenant_context(tenant_a):
        authorization.refresh_from_db()
    assert authorization.status == "revoked"
    assert authorization.revoked_via == "web_form"


def test_the_preference_center_cannot_revoke_someone_elses_authorization(tenant_a, contact, text):
    from .conftest import new_contact

    other = new_contact(tenant_a)
    theirs, _ = sign(tenant_a, other, text)
    response = _client().post(
        _url(LinkKind.PREFERENCES, tenant_a, contact), {"action": "revoke", "authorization": str(theirs.pk)}
    )
    assert response.status_code == 404
    with tenant_context(tenant_a):
        theirs.refresh_from_db()
    assert theirs.status == "valid"


def test_unsubscribe_from_all_then_opting_in_again(tenant_a, contact, topics):
    topic = topics["marketing_newsletters"]
    services.consent_grant(tenant=tenant_a, contact=contact, topic=topic, evidence=evidence())
    url = _url(LinkKind.PREFERENCES, tenant_a, contact)
    _client().post(url, {"action": "unsubscribe_all"})
    assert (
        may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).code
        == "suppressed_unsubscribe_all"
    )
    assert (
        may_send(contact=contact, purpose="fundraising", uses_phi=False).code == "suppressed_unsubscribe_all"
    )
    assert may_send(contact=contact, purpose="treatment", uses_phi=True).allowed
    _client().post(url, {"action": "save", "topic_marketing_newsletters": "on", "frequency": "as_published"})
    assert may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).allowed


def test_one_click_unsubscribe_is_a_post_without_csrf_or_login(tenant_a, contact):
    topic = topic_for(tenant_a, "marketing")
    services.consent_grant(tenant=tenant_a, contact=contact, topic=topic, evidence=evidence())
    headers = links.list_unsubscribe_headers(contact, topic)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = headers["List-Unsubscribe"].strip("<>")
    assert url.startswith("http")
    assert "/p/unsubscribe/" in url
    path = url.split("://", 1)[1].split("/", 1)[1]
    client = Client(enforce_csrf_checks=True)

    page = client.get(f"/{path}")  # a link scanner's GET changes nothing
    assert page.status_code == 200
    assert "Unsubscribe" in page.content.decode()
    assert may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).allowed

    assert client.post(f"/{path}", {}).status_code == 400  # not the RFC 8058 body
    response = client.post(
        f"/{path}", "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert (
        may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).code == "opt_in_revoked"
    )
    again = client.post(
        f"/{path}", "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert again.status_code == 200
    with tenant_context(tenant_a):
        assert ConsentEvent.objects.filter(contact=contact, kind="revoked").count() == 1
        assert ConsentState.objects.get(contact=contact, topic=topic).status == "revoked"


def test_unsubscribe_without_topic_suppresses_all_non_transactional(tenant_a, contact):
    url = _url(LinkKind.UNSUBSCRIBE, tenant_a, contact)
    response = Client(enforce_csrf_checks=True).post(url, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    with tenant_context(tenant_a):
        assert Suppression.objects.filter(
            contact=contact, reason="unsubscribe_all", removed_at__isnull=True
        ).exists()


def test_waiver_request_and_withdrawal_in_the_preference_center(
    tenant_a, contact, django_capture_on_commit_callbacks
):
    patient_sender(tenant_a)  # the code leaves from the tenant's verified domain
    services.consent_settings_update(
        tenant=tenant_a,
        actor=evidence().actor,
        operating_states=[],
        state_mode="strictest",
        allow_unencrypted_waivers=True,
        reminder_days_before_expiry=30,
    )
    url = _url(LinkKind.PREFERENCES, tenant_a, contact)
    assert "without encryption" in _client().get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        _client().post(url, {"action": "waiver_request", "purposes": ["treatment"], "understood": "on"})
    assert not may_send(contact=contact, purpose="treatment", uses_phi=True).unencrypted_allowed
    code = re.search(r"\b(\d{6})\b", patient_mail()[-1].body).group(1)
    _client().post(url, {"action": "waiver_confirm", "code": code})
    assert may_send(contact=contact, purpose="treatment", uses_phi=True).unencrypted_allowed
    _client().post(url, {"action": "waiver_withdraw"})
    assert not may_send(contact=contact, purpose="treatment", uses_phi=True).unencrypted_allowed
    assert [e.action for e in audit_events(tenant=tenant_a, action__startswith="waiver.")] == [
        "waiver.request",
        "waiver.withdraw",
    ]


def test_tokens_are_opaque_and_carry_no_phi(tenant_a, contact):
    token = link_token(LinkKind.UNSUBSCRIBE, tenant_id=tenant_a.pk, contact_id=contact.pk, topic_key="news")
    assert token.startswith("o.")
    raw = base64.urlsafe_b64decode(token[2:] + "=" * (-len(token[2:]) % 4))
    # Whoever holds the link cannot read the contact's or the tenant's id from it, in any encoding.
    for secret in (contact.pk.bytes, tenant_a.pk.bytes, b"news"):
        assert secret not in raw
    for text in (contact.pk.hex, str(contact.pk), str(tenant_a.pk)):
        assert text not in token
    # Two links for the same contact share nothing that would link them.
    again = link_token(LinkKind.UNSUBSCRIBE, tenant_id=tenant_a.pk, contact_id=contact.pk, topic_key="news")
    assert token[2:18] != again[2:18]
    link = link_read(LinkKind.UNSUBSCRIBE, token)
    assert (link.tenant_id, link.contact_id, link.text_id, link.topic_key) == (
        tenant_a.pk,
        contact.pk,
        None,
        "news",
    )


def test_links_sealed_before_they_became_opaque_still_work(tenant_a, contact):
    """Unsubscribe links already in inboxes were sealed, readable: they open until they expire."""
    body = struct.pack(
        ">I16s16s16s9s", int(time.time()), tenant_a.pk.bytes, contact.pk.bytes, bytes(16), b"n" * 9
    )
    sealed = seal("healthmail.consent.unsubscribe", body + b"news")
    link = link_read(LinkKind.UNSUBSCRIBE, sealed)
    assert (link.contact_id, link.topic_key) == (contact.pk, "news")
    response = _client().post(
        reverse("consent_public:unsubscribe", args=[sealed]), {"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    with pytest.raises(LinkInvalid):
        link_read(LinkKind.PREFERENCES, sealed)


def test_links_issued_before_sealed_tokens_still_work(tenant_a, contact):
    """Unsubscribe links already in inboxes were signed with django.core.signing."""
    payload = {"t": str(tenant_a.pk), "c": str(contact.pk), "v": "", "k": "news", "n": "legacy-nonce"}
    legacy = signing.dumps(payload, salt="healthmail.consent.unsubscribe", compress=True)
    assert link_read(LinkKind.UNSUBSCRIBE, legacy).contact_id == contact.pk
    with pytest.raises(LinkInvalid):
        link_read(LinkKind.PREFERENCES, signing.dumps(payload, salt="healthmail.consent.unsubscribe"))


def test_a_link_sealed_before_a_secret_key_rotation_still_opens(tenant_a, contact, settings):
    token = link_token(LinkKind.PREFERENCES, tenant_id=tenant_a.pk, contact_id=contact.pk)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-next-key"
    assert link_read(LinkKind.PREFERENCES, token).contact_id == contact.pk


@pytest.mark.parametrize("state", ["CA", "WA"])
def test_the_signing_page_shows_the_notices_the_patients_state_requires(tenant_a, text, state):
    from consent import state_rules

    from .conftest import new_contact

    patient = new_contact(tenant_a, state=state)  # the text was published before any state applied
    notice = state_rules.RULES[state].required_disclosure_text
    assert notice
    assert notice not in text.state_disclosures
    url = _url(LinkKind.AUTHORIZE, tenant_a, patient, text_id=text.pk)
    body = _client().get(url).content.decode()
    assert escape(notice) in body
    form = {"signer_name": "Pat Example", "signed_on": timezone.localdate().isoformat(), "intent": "on"}
    _client().post(url, form)
    copy = _client().get(url + "copy/")
    assert notice in copy.content.decode()


def test_the_signer_downloads_a_copy_and_the_delivery_is_recorded(tenant_a, contact, text):
    from consent.models import AuthorizationEvent

    patient_sender(tenant_a)  # the portal copy leaves from the tenant's verified domain
    url = _url(LinkKind.AUTHORIZE, tenant_a, contact, text_id=text.pk)
    client = _client()
    assert client.get(url + "copy/").status_code == 400  # nothing signed yet: nothing to copy
    form = {"signer_name": "Pat Example", "signed_on": timezone.localdate().isoformat(), "intent": "on"}
    client.post(url, form)
    assert 'data-testid="authorization-copy"' in client.get(url).content.decode()
    response = client.get(url + "copy/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="authorization-')
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    for value in ("Pat Example", text.phi_description, text.recipients, text.redisclosure_statement):
        assert value in body
    with tenant_context(tenant_a):
        sources = sorted(
            AuthorizationEvent.objects.filter(kind="copy_delivered").values_list("source", flat=True)
        )
    assert sources == ["system", "web_form"]  # sent through the portal once signed, then downloaded
    assert audit_events(tenant=tenant_a, action="authorization.copy")
    assert audit_events(tenant=tenant_a, action="phi.read")


def test_a_signed_copy_goes_to_the_patient_through_the_secure_portal(tenant_a, contact, text):
    from delivery.models import Message
    from delivery.outbox import message_content

    sender_domain = patient_sender(tenant_a)
    url = _url(LinkKind.AUTHORIZE, tenant_a, contact, text_id=text.pk)
    form = {"signer_name": "Pat Example", "signed_on": timezone.localdate().isoformat(), "intent": "on"}
    _client().post(url, form)
    _client().post(url, form)  # a double submission sends no second copy
    with tenant_context(tenant_a):
        [message] = Message.objects.filter(source_type="authorization_copy")
        content = message_content(message)
    assert (message.contact_id, message.encryption_policy, message.purpose, message.sender_domain_id) == (
        contact.pk,
        "portal_always",
        "operations",
        sender_domain.pk,  # without one the engine would refuse it
    )
    assert "Pat Example" in content.text
    assert "Pat" not in content.subject
    assert text.recipients in content.text
    assert audit_events(tenant=tenant_a, action="authorization.copy_send")


def test_without_a_verified_sender_domain_the_copy_is_a_download_and_none_is_recorded_as_sent(
    tenant_a, contact, text
):
    from consent.models import AuthorizationEvent
    from delivery.models import Message

    url = _url(LinkKind.AUTHORIZE, tenant_a, contact, text_id=text.pk)
    form = {"signer_name": "Pat Example", "signed_on": timezone.localdate().isoformat(), "intent": "on"}
    assert _client().post(url, form).status_code == 302
    with tenant_context(tenant_a):
        assert not Message.objects.filter(source_type="authorization_copy").exists()
        assert not AuthorizationEvent.objects.filter(kind="copy_delivered").exists()
    assert not audit_events(tenant=tenant_a, action="authorization.copy_send")
    assert _client().get(url + "copy/").status_code == 200
