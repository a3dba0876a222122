"""One way for a page to run a service (healthmail/web/actions.py): the person sees the refusal, or the
success, on the page the view returns to; a refusal is never shown as a success, nor lost."""

from __future__ import annotations

from django.contrib.messages import constants, get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.test import RequestFactory

from healthmail.errors import ApplicationError, Conflict
from healthmail.web.actions import service_run


def _request():
    request = RequestFactory().post("/somewhere/")
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


def _flashed(request) -> list[tuple[int, str]]:
    return [(message.level, message.message) for message in get_messages(request)]


def test_a_refusal_is_flashed_as_an_error_with_the_services_own_words():
    request = _request()

    def refuse():
        raise Conflict("This hold is already released.", code="released")

    assert service_run(request, refuse, "Hold released.") is False
    assert _flashed(request) == [(constants.ERROR, "This hold is already released.")]


def test_a_success_is_flashed_once_and_may_be_made_from_the_result():
    request = _request()
    assert service_run(request, lambda: 3, lambda count: f"{count} members notified.") is True
    assert service_run(request, lambda: None, "Saved.") is True
    assert _flashed(request) == [(constants.SUCCESS, "3 members notified."), (constants.SUCCESS, "Saved.")]


def test_an_unexpected_error_is_not_swallowed():
    """Only refusals written for people are shown; a bug still answers 500 (and rolls back)."""
    request = _request()

    def crash():
        raise RuntimeError("boom")

    try:
        service_run(request, crash, "Saved.")
    except RuntimeError:
        pass
    else:
        raise AssertionError("a programming error was turned into a message")
    assert _flashed(request) == []
    assert issubclass(Conflict, ApplicationError)
