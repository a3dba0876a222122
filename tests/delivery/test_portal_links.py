"""Links in a portal message open: each web link goes through our redirect in a new tab (the frame
allows popups that escape its sandbox), only for a verified reader and only to the message's own
links; the frame keeps scripts out."""

from __future__ import annotations

import html as html_lib
import re
import uuid

import pytest

from delivery.outbox import RenderedContent
from delivery.portal.links import portal_frame_html, portal_link_target
from delivery.portal.services import portal_deliver
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events
from tests.delivery.outbox_helpers import make_message
from tests.delivery.patient_mail import patient_mail, patient_sender

pytestmark = pytest.mark.django_db

HTML = (
    '<p>See <a target="_self" href="https://clinic.example/visit?a=1&amp;b=2">your visit</a>, '
    "<a href='mailto:front-desk@clinic.example'>write to us</a> or "
    '<a href="javascript:alert(1)">this</a>.</p>'
)


@pytest.fixture(autouse=True)
def _own_address(client):
    client.defaults["REMOTE_ADDR"] = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def _portal_path(tenant) -> str:
    patient_sender(tenant)  # the code leaves from the tenant's verified domain
    message = make_message(tenant, address="zeb@patients.example")
    content = RenderedContent(subject="Your visit", html=HTML, text="See your visit.")
    with tenant_context(tenant):
        notice = portal_deliver(message, content)
    return "/" + notice.portal_url.split("://", 1)[1].split("/", 1)[1]


def _verify(client, path: str) -> None:
    client.post(path + "code/")
    code = re.search(r"\b(\d{6})\b", patient_mail()[-1].body).group(1)
    assert client.post(path + "verify/", {"code": code}).status_code == 302


def test_the_frame_html_sends_web_links_through_our_redirect_in_a_new_tab():
    framed = portal_frame_html(html=HTML, token="tok")
    assert framed.startswith('<base target="_blank">')
    anchors = re.findall(r"<a [^>]*>", framed)
    assert len(anchors) == 3
    for anchor in anchors:  # ours first: the sender's target="_self" comes after and loses
        assert anchor.startswith('<a target="_blank" rel="noopener noreferrer"')
    assert 'href="/p/portal/tok/links/0/"' in anchors[0]
    assert "clinic.example/visit" not in framed
    assert "mailto:front-desk@clinic.example" in anchors[1]
    assert "javascript:" in anchors[2]  # left as is: the sandbox runs no script
    assert portal_link_target(html=HTML, index=0) == "https://clinic.example/visit?a=1&b=2"
    assert portal_link_target(html=HTML, index=1) is None  # only web links are redirected
    assert portal_link_target(html=HTML, index=2) is None
    assert portal_link_target(html=HTML, index=3) is None


def test_a_verified_reader_opens_the_messages_link(client, tenant_a):
    path = _portal_path(tenant_a)
    unverified = client.get(path + "links/0/")  # not before verification: back to the code page
    assert unverified["Location"] == path
    _verify(client, path)
    page = client.get(path).content.decode()
    assert "delivery/portal/links.py" not in page  # template comments stay comments
    frame = re.search(r'<iframe[^>]*sandbox="([^"]*)"[^>]*srcdoc="([^"]*)"', page)
    assert set(frame.group(1).split()) == {"allow-popups", "allow-popups-to-escape-sandbox"}
    assert "allow-scripts" not in frame.group(1)
    assert html_lib.escape(path + "links/0/") in frame.group(2)

    response = client.get(path + "links/0/")
    assert response.status_code == 302
    assert response["Location"] == "https://clinic.example/visit?a=1&b=2"
    assert response["Referrer-Policy"] == "same-origin"  # the portal link never leaves in a Referer
    assert len(audit_events(tenant=tenant_a, action="portal.link_open")) == 1
    for index in (1, 2, 99):  # not a web link of this message: no redirect anywhere
        assert client.get(path + f"links/{index}/").status_code == 404
