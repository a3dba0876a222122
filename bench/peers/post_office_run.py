"""django-post-office against the benchmark's sink: run by bench/delivery_peers.py with the Python of a
throw-away virtual environment that holds the peer (never the project's environment, and none of the
peer's code enters the project). Prints one JSON line: enqueue and send seconds, messages sent.

    python post_office_run.py --config default|tuned --count N --processes P --schema S --host H --port P

Messages have the benchmark's shape: the synthetic renderer's subject, text and HTML parts (~0.7 KB
each), the List-Unsubscribe, List-Unsubscribe-Post and Feedback-ID headers. The peer does not sign
(post-office has no DKIM): that is ~0.25 ms of CPU per message in its favour.
Configurations: default (post-office's own settings: mail.send per message, send_queued with one
process, batches of 100, a log row per message) and tuned (send_many in chunks of 2,000, batches of
1,000, as many processes as the engine has workers, log rows for failures only).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from urllib.parse import unquote, urlparse

BODY = ("Synthetic newsletter paragraph about seasonal flu clinics and opening hours. " * 10)[:700]
CHUNK = 2000


def configure(*, schema: str, host: str, port: int, tuned: bool) -> None:
    import django
    from django.conf import settings

    url = urlparse(os.environ["DATABASE_URL"])
    settings.configure(
        INSTALLED_APPS=["post_office"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": url.path.lstrip("/"),
                "USER": unquote(url.username or ""),
                "PASSWORD": unquote(url.password or ""),
                "HOST": url.hostname or "",
                "PORT": str(url.port or ""),
                "OPTIONS": {"options": f"-c search_path={schema}"},
            }
        },
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST=host,  # the certificate's name: verified STARTTLS (SSL_CERT_FILE is the test CA)
        EMAIL_PORT=port,
        EMAIL_USE_TLS=True,
        EMAIL_TIMEOUT=30,
        USE_TZ=True,
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],  # it renders subjects
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        POST_OFFICE={"BATCH_SIZE": 1000, "LOG_LEVEL": 1, "THREADS_PER_PROCESS": 5} if tuned else {},
        LOGGING_CONFIG=None,
    )
    django.setup()


def message(index: int) -> dict:
    text = f"Hello patient {index:08x},\n\n{BODY}\n"
    return {
        "recipients": [f"synthetic.patient.{index:06d}@sink.test"],
        "sender": "Bench Clinic <news@mail.bench.test>",
        "subject": "Flu clinics are open",
        "message": text,
        "html_message": f"<p>{text}</p>",
        "headers": {
            "List-Unsubscribe": "<https://healthmail.test/p/unsubscribe/" + "x" * 120 + ">",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Feedback-ID": "campaign:bench:0123456789ab:hm-marketing",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", choices=["default", "tuned"], required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--migrate", action="store_true")
    args = parser.parse_args()
    tuned = args.config == "tuned"
    configure(schema=args.schema, host=args.host, port=args.port, tuned=tuned)
    from django.core.management import call_command
    from post_office import mail
    from post_office.models import STATUS, Email

    if args.migrate:
        call_command("migrate", verbosity=0)
        print(json.dumps({"migrated": True}), flush=True)
        return
    before = Email.objects.filter(status=STATUS.sent).count()
    started = time.time()
    if tuned:
        for start in range(0, args.count, CHUNK):
            mail.send_many([message(i) for i in range(start, min(args.count, start + CHUNK))])
    else:
        for index in range(args.count):
            mail.send(**message(index))
    enqueued = time.time()
    lockfile = os.path.join(tempfile.gettempdir(), f"post-office-bench-{args.schema}")
    mail.send_queued_mail_until_done(lockfile=lockfile, processes=args.processes if tuned else 1)
    finished = time.time()
    sent = Email.objects.filter(status=STATUS.sent).count() - before
    print(
        json.dumps({"enqueue_seconds": enqueued - started, "seconds": finished - started, "sent": sent}),
        flush=True,
    )


if __name__ == "__main__":
    main()
