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
# Switches tests flip to prove a defence can fail; never read from the environment on purpose.
TEST_ONLY = {"DISCLOSURE_ENABLED": "the attack suite turns the disclosure policy off to show it can fail"}
EXEMPT = DJANGO_BUILT_INS | set(DERIVED) | set(TEST_ONLY)


def _guide() -> dict[str, str]:
    return inventory.documented_variables((inventory.ROOT / "docs" / "operations.md").read_text())


def test_every_setting_the_code_reads_has_a_documented_environment_variable():
    gaps = inventory.configuration_gaps(
        reads=inventory.project_settings_read(),
        environment=inventory.all_settings_environment(),
        documented=_guide(),
        exempt=EXEMPT,
    )
    assert gaps == {}


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


def test_planted_gaps_are_caught(tmp_path):
    """The whole rule on a planted project: a read without a variable, a variable without a row,
    and a row without a default."""
    for package in inventory.PROJECT_PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "delivery" / "planted.py").write_text(
        "from django.conf import settings\n"
        "A = settings.DELIVERY_SOMETHING_NEW\n"
        "B = settings.UNDOCUMENTED\n"
        "C = settings.NO_DEFAULT\n"
        "D = settings.FINE\n"
        "G = settings.ROOT_URLCONF\n"
    )
    settings_source = (
        'UNDOCUMENTED = env("UNDOCUMENTED_VARIABLE", default="")\n'
        'NO_DEFAULT = env.int("NO_DEFAULT", default=1)\n'
        'FINE = env("FINE", default="x")\n'
    )
    guide = "| variable | default | meaning |\n| `NO_DEFAULT` |  | x |\n| `FINE` | `x` | fine |\n"

    gaps = inventory.configuration_gaps(
        reads=inventory.project_settings_read(tmp_path),
        environment=inventory.settings_environment(settings_source),
        documented=inventory.documented_variables(guide),
        exempt={"ROOT_URLCONF"},
    )

    assert gaps == {
        "DELIVERY_SOMETHING_NEW": "no environment variable (read at delivery/planted.py:2)",
        "UNDOCUMENTED": "UNDOCUMENTED_VARIABLE not in docs/operations.md",
        "NO_DEFAULT": "documented without a default",
    }


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
