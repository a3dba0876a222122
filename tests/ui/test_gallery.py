"""The design system's gallery (/ui/): every role and the platform admin see it, nobody signed out or
without a membership does; with ?invalid=1 its form shows errors tied to their fields."""

from __future__ import annotations

import pytest

from healthmail.accounts.roles import Role
from tests.conftest import sign_in
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", list(Role))
def test_every_role_sees_the_gallery(member_client, role):
    response = member_client(role).get("/ui/")
    assert response.status_code == 200
    for component in ("Form controls", "Buttons", "Tables", "Badges", "Alerts", "Empty states"):
        assert f">{component}</h2>" in response.text


def test_platform_admin_sees_the_gallery(platform_admin_client):
    assert platform_admin_client.get("/ui/").status_code == 200


def test_signed_out_is_sent_to_sign_in(client):
    response = client.get("/ui/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_user_without_membership_is_refused(client):
    sign_in(client, UserFactory())
    assert client.get("/ui/").status_code == 403


def test_errors_are_tied_to_their_fields(member_client):
    text = member_client(Role.MARKETER).get("/ui/?invalid=1").text
    assert 'role="alert"' in text
    assert 'aria-invalid="true"' in text
    assert 'aria-describedby="id_name_helptext id_name_error"' in text
    assert 'id="id_name_error"' in text
    assert 'id="id_name_helptext"' in text
