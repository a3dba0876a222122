"""Placeholder; the dev mailbox page is being written."""
from django.http import Http404


def mailbox_list(request):
    raise Http404


mailbox_message = mailbox_list
