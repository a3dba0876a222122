"""Run the inbound SMTP endpoint for bounces (DSN) and complaints (ARF): `manage.py inbound_smtp`."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from delivery.inbound.smtp import inbound_controller


class Command(BaseCommand):
    help = "Receive bounce and complaint reports by SMTP and apply them."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=2525)

    def handle(self, *args, host: str, port: int, **options):
        controller = inbound_controller(host, port)
        controller.start()
        self.stdout.write(f"Inbound reports on {host}:{port}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
