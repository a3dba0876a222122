"""Test set-up: one throw-away database per xdist worker, built by the owner role, then every test
runs as the non-superuser application role, so row-level security is always in force."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import tempfile
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from psycopg import sql

from tests.server_alone import RunLock

_ACCEPTANCE: list = []
_RUN_LOCK: list[RunLock] = []


# Migrating a database costs a minute or two of CPU, almost all of it Django rendering model states
# (every model points at the tenant, so each operation re-renders most of them); the SQL takes seconds.
# Under xdist the first worker to need a database migrates one template and every worker copies it
# (CREATE DATABASE ... TEMPLATE, a file copy), instead of each worker migrating its own. The
# controller names the template, so workers of one run share it and parallel runs never do.
_TEMPLATE = "HEALTHMAIL_TEST_TEMPLATE_DB"


def pytest_configure(config):
    """Start the `make run` stack of the acceptance test now (it takes a minute or two) when the session
    will run it: in the xdist controller or the only process, never in each worker."""
    if hasattr(config, "workerinput"):
        return
    os.environ[_TEMPLATE] = f"test_healthmail_template_{os.getpid()}"  # inherited by the workers
    from tests.e2e.make_run import HANDOFF, StackProcess, selected

    if selected(config) and not os.environ.get(HANDOFF):
        stack = StackProcess.start()
        os.environ[HANDOFF] = stack.handoff()  # xdist workers start after this and inherit it
        _ACCEPTANCE.append(stack)


def pytest_unconfigure(config):
    while _ACCEPTANCE:
        _ACCEPTANCE.pop().stop()
    if not hasattr(config, "workerinput") and os.environ.get(_TEMPLATE):
        RunLock(os.environ[_TEMPLATE]).remove()
        _drop_template(os.environ.pop(_TEMPLATE))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Each test from set-up to teardown under the run's lock (tests/server_alone.py)."""
    if not _RUN_LOCK:
        _RUN_LOCK.append(RunLock(os.environ[_TEMPLATE]))
    with _RUN_LOCK[0].held(alone=item.get_closest_marker("server_alone") is not None):
        return (yield)


def _admin_connection(dbname: str) -> psycopg.Connection:
    owner = settings.DATABASES["owner"]
    return psycopg.connect(
        host=owner["HOST"],
        port=owner["PORT"],
        user=owner["USER"],
        password=owner["PASSWORD"] or None,
        dbname=dbname,
        autocommit=True,
    )


@functools.cache
def _maintenance_db() -> str:
    """The owner's own database (the settings name it until a test database replaces it)."""
    return settings.DATABASES["owner"]["NAME"]


def _lock_path(template: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"{template}.lock")


def _use_database(name: str) -> None:
    for alias in ("default", "owner"):
        settings.DATABASES[alias]["NAME"] = name
        connections[alias].settings_dict["NAME"] = name
        connections[alias].close()


def _migrate(name: str, django_db_blocker) -> None:
    """Create `name` and build the schema in it as the owner, with the application role's grants."""
    with _admin_connection(_maintenance_db()) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _use_database(name)
    with django_db_blocker.unblock():
        call_command("db_setup", database="owner", verbosity=0)
        call_command("migrate", database="owner", verbosity=0, interactive=False)
        call_command("db_setup", database="owner", verbosity=0)
        for connection in connections.all():
            connection.close()  # a template being copied must have no session


def _copy_template(name: str, django_db_blocker) -> None:
    """This worker's database as a copy of the run's migrated template (built by the first worker
    that needs one, under a file lock); then the grants, which a copy does not carry."""
    template = os.environ[_TEMPLATE]
    with open(_lock_path(template), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        lock.seek(0)
        if lock.read() != "ready":
            _migrate(template, django_db_blocker)
            lock.write("ready")
            lock.flush()
        with _admin_connection(_maintenance_db()) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
    _use_database(name)
    with django_db_blocker.unblock():
        call_command("db_setup", database="owner", verbosity=0)
        connections["owner"].close()


def _drop_template(template: str) -> None:
    if not os.path.exists(_lock_path(template)):
        return  # no worker needed a database
    with _admin_connection(_maintenance_db()) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(template)))
    os.remove(_lock_path(template))


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker, worker_id):
    name = f"test_healthmail_{worker_id}_{os.getpid()}"
    maintenance_db = _maintenance_db()
    if worker_id != "master" and os.environ.get(_TEMPLATE):
        _copy_template(name, django_db_blocker)
    else:
        _migrate(name, django_db_blocker)
    yield
    with django_db_blocker.unblock():
        for connection in connections.all():
            connection.close()
    with _admin_connection(maintenance_db) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def owner_connection(django_db_blocker):
    """A raw connection as the schema owner (superuser in dev): for tests that must bypass the app."""
    with django_db_blocker.unblock():
        connection = connections["owner"]
        connection.ensure_connection()
        yield connection
        connection.close()


@pytest.fixture
def tenant_a(db):
    from tests.factories import BaaFactory, TenantFactory

    tenant = TenantFactory(name="Synthetic Clinic A", slug="clinic-a")
    BaaFactory(tenant=tenant)
    return tenant


@pytest.fixture
def tenant_b(db):
    from tests.factories import BaaFactory, TenantFactory

    tenant = TenantFactory(name="Synthetic Clinic B", slug="clinic-b")
    BaaFactory(tenant=tenant)
    return tenant


def sign_in(client, user, *, tenant=None):
    """A session as after password + TOTP: the way every interactive user arrives."""
    import time

    from django_otp import DEVICE_ID_SESSION_KEY

    from tests.factories import confirmed_totp

    device = user.totpdevice_set.filter(confirmed=True).first() or confirmed_totp(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session["auth_at"] = int(time.time())
    session["last_seen"] = int(time.time())
    if tenant is not None:
        session["tenant_id"] = str(tenant.pk)
    session.save()
    return client


@pytest.fixture
def member_client(client, tenant_a):
    """`member_client(role)` → a Django test client signed in as a new member of tenant A with MFA."""
    from tests.factories import MembershipFactory

    def make(role, tenant=None):
        tenant = tenant or tenant_a
        membership = MembershipFactory(tenant=tenant, role=role)
        sign_in(client, membership.user, tenant=tenant)
        client.membership = membership
        return client

    return make


@pytest.fixture
def platform_admin_client(client, db):
    from tests.factories import UserFactory

    user = UserFactory(is_platform_admin=True)
    return sign_in(client, user)


@pytest.fixture
def committed_db(django_db_setup, django_db_blocker):
    """Database access without the per-test transaction: rows are committed and visible to other
    processes (live servers, Celery workers). Every test using it makes its own uniquely named
    tenants, so nothing needs flushing (the app role may not TRUNCATE)."""
    with django_db_blocker.unblock(), fresh_tls_policy_cache():
        yield


@contextlib.contextmanager
def fresh_tls_policy_cache() -> Iterator[None]:
    """Forget the recipient-domain TLS policies a committed test cached. The cache is shared by every
    tenant (public DNS facts) and names the test's own loopback MX servers, so a row left behind would
    send a later test's mail to a server that test never started."""
    from delivery.models import DomainTlsPolicy

    before = set(DomainTlsPolicy.objects.values_list("pk", flat=True))
    try:
        yield
    finally:
        DomainTlsPolicy.objects.exclude(pk__in=before).delete()


# --- API clients: keys issued through the real service, and a client that presents them --------------
@pytest.fixture
def issue_key(tenant_a):
    from healthmail.accounts.api_keys import SCOPES, api_key_create
    from healthmail.actors import Actor

    """`issue_key(scopes=[...], tenant=..., expires_at=..., by=user)` → the plaintext key, shown once.
    `by`: the person who creates it (default: the system, a key no person answers for)."""

    def issue(*, scopes=None, tenant=None, name="Test integration", expires_at=None, by=None) -> str:
        issued = api_key_create(
            actor=Actor.for_user(by) if by is not None else Actor.system("tests"),
            tenant=tenant or tenant_a,
            name=name,
            scopes=list(SCOPES) if scopes is None else scopes,
            expires_at=expires_at,
        )
        return issued.plaintext

    return issue


@pytest.fixture
def api():
    """`api(key).get(path)`: a Django test client sending `Authorization: Bearer <key>`."""

    from django.test import Client

    class ApiClient:
        def __init__(self, key: str | None):
            self.client = Client()
            self.headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}

        def get(self, path, **extra):
            return self.client.get(path, **self.headers, **extra)

        def post(self, path, data=None, content_type="application/json", **extra):
            return self.client.post(path, data, content_type=content_type, **self.headers, **extra)

        def delete(self, path, **extra):
            return self.client.delete(path, **self.headers, **extra)

        def generic(self, method, path, data="", content_type="application/json", **extra):
            return self.client.generic(method, path, data, content_type=content_type, **self.headers, **extra)

    return ApiClient


@pytest.fixture
def smtp_receiver(settings):
    """A real SMTP server for system mail (tests/sysmail/outbox.py): down until `.up()`; Django's
    SMTP backend points at it, and the first retry is due within a second."""
    from tests.sysmail.outbox import Receiver

    server = Receiver()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", server.port, False
    settings.EMAIL_TIMEOUT = 5
    settings.SYSTEM_MAIL_RETRY_FIRST_SECONDS = 1
    yield server
    server.down()
