"""Every setting the code reads comes from an environment variable that docs/operations.md lists
with its default; and the inventory behind that rule finds what it must (planted sources below)."""

from __future__ import annotations

from tests.operations import settings_inventory as inventory

# Django's own structure, not deployment: the user model, the URL root, the login page's path.
DJANGO_BUILT_INS = {"AUTH_USER_MODEL", "LOGIN_URL", "ROOT_URLCONF"}
# Computed from other settings, each of which has its own variable.
DERIVED = {
    "BASE_DIR": "the checkout's directory",
    "REQUEST_BODY_MAX_BYTES_BY_PATH": "CONTACT_IMPORT_MAX_BYTES plus headroom for the upload page",
}
# Read by delivery code but added to the settings by the local-mail-world change (issue 13 item 1,
# branch mailworld). Allowed to be missing from the settings only: once defined, every rule applies.
ADDED_BY_MAIL_WORLD = {"DELIVERY_RESOLVER", "DELIVERY_CA_FILE", "DELIVERY_DNS_ZONE_FILE"}
EXEMPT = DJANGO_BUILT_INS | set(DERIVED)


def _guide() -> dict[str, str]:
    return inventory.documented_variables((inventory.ROOT / "docs" / "operations.md").read_text())


def test_every_setting_the_code_reads_comes_from_the_environment():
    environment = inventory.all_settings_environment()
    missing = {
        name: where
        for name, where in inventory.project_settings_read().items()
        if name not in EXEMPT
        and not environment.get(name)
        and not (name in ADDED_BY_MAIL_WORLD and name not in environment)
    }
    assert missing == {}, "settings read by the code without an environment variable (base.py/production.py)"


def test_every_environment_variable_is_documented_with_a_default():
    guide = _guide()
    variables = inventory.environment_variables_read()
    assert "DELIVERY_EHLO_HOSTNAME" in variables  # the inventory sees the settings at all
    undocumented = sorted(variables - set(guide))
    assert undocumented == [], "add a row to docs/operations.md, Environment variables"
    without_default = sorted(name for name in variables if not guide[name])
    assert without_default == []


def test_the_scanner_finds_every_form_of_read():
    source = """
from django.conf import settings
from django.conf import settings as django_settings
from elsewhere import read_it


def _setting(name, default):
    return type(default)(getattr(settings, name, default))


A = settings.PLAIN_ATTRIBUTE
B = getattr(settings, "WITH_GETATTR", 1)
C = _setting("THROUGH_A_HELPER", 2)
D = django_settings.UNDER_AN_ALIAS
E = read_it("THROUGH_AN_IMPORTED_HELPER", 3)
F = settings.configured  # a method of the settings object, not a setting
"""
    names = {read.name for read in inventory.settings_read(source, "planted.py", frozenset({"read_it"}))}
    assert names == {
        "PLAIN_ATTRIBUTE",
        "WITH_GETATTR",
        "THROUGH_A_HELPER",
        "UNDER_AN_ALIAS",
        "THROUGH_AN_IMPORTED_HELPER",
    }


def test_the_scanner_ignores_other_objects_named_like_settings():
    source = "from rest_framework.settings import api_settings\nX = api_settings.DEFAULT_THROTTLE_RATES\n"
    assert inventory.settings_read(source) == []


def test_a_planted_undocumented_setting_is_caught(tmp_path):
    """The whole rule, on a copy of the project with one extra read: it must fail."""
    for package in inventory.PROJECT_PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "delivery" / "planted.py").write_text(
        "from django.conf import settings\nLIMIT = settings.DELIVERY_SOMETHING_NEW\n"
    )
    reads = inventory.project_settings_read(tmp_path)
    assert reads == {"DELIVERY_SOMETHING_NEW": ["delivery/planted.py:2"]}
    assert "DELIVERY_SOMETHING_NEW" not in inventory.all_settings_environment()


def test_settings_environment_sees_variables_in_nested_values_and_secrets():
    source = """
A = env.int("A_VARIABLE", default=1)
STREAMS = {"x": {"relay": _relay(password=env_secret("RELAY_PASSWORD"))}}
CONSTANT = 3
"""
    assert inventory.settings_environment(source) == {
        "A": ["A_VARIABLE"],
        "STREAMS": ["RELAY_PASSWORD", "RELAY_PASSWORD_FILE"],
        "CONSTANT": [],
    }


def test_documented_variables_reads_table_rows_only():
    markdown = (
        "Set `NOT_A_ROW` somewhere.\n"
        "| variable | default | meaning |\n"
        "| `ONE`, `TWO` | `5` | both |\n"
        "| `THREE` |  | no default |\n"
    )
    assert inventory.documented_variables(markdown) == {"ONE": "`5`", "TWO": "`5`", "THREE": ""}
