"""Front-end packages come from the npm registry (package.json) and are served by the app: only the
files listed in healthmail/frontend.py, never a committed copy, never a CDN."""

import json
import re
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core import checks
from django.test import override_settings

from healthmail import frontend

ROOT = Path(settings.BASE_DIR)
STATIC_REFERENCE = re.compile(r"""{%\s*static\s+['"](vendor/[^'"]+)['"]""")


def test_every_listed_file_is_found_under_its_served_name():
    for name, relative in frontend.VENDOR_FILES.items():
        found = finders.find(f"{frontend.PREFIX}/{name}")
        assert found == str(ROOT / "node_modules" / relative), name
        assert Path(found).stat().st_size > 0


def test_files_not_listed_are_not_served():
    for path in ("vendor/package.json", "vendor/../package.json", "vendor/htmx.org/dist/htmx.js", "vendor/"):
        assert finders.find(path) is None, path


def test_every_package_of_a_listed_file_is_pinned_exactly():
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in pinned.values()), pinned
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for relative in frontend.VENDOR_FILES.values():
        package = relative.split("/dist/")[0].split("/axe")[0]
        assert package in pinned, relative
        assert lock[f"node_modules/{package}"]["version"] == pinned[package]


def test_templates_name_only_listed_vendor_files():
    named = set()
    for template in ROOT.glob("**/templates/**/*.html"):
        if "node_modules" in template.parts or ".venv" in template.parts:
            continue
        named |= set(STATIC_REFERENCE.findall(template.read_text()))
    assert named, "no template loads a vendor file: the test would pass on nothing"
    assert named <= {f"{frontend.PREFIX}/{name}" for name in frontend.VENDOR_FILES}


def test_no_third_party_copy_is_committed():
    committed = [
        path
        for path in ROOT.glob("**/static/**/*.min.*")
        if "node_modules" not in path.parts and ".venv" not in path.parts and ".staticfiles" not in path.parts
    ]
    assert committed == []


def test_a_missing_install_is_an_error_that_says_what_to_run(tmp_path):
    with override_settings(FRONTEND_NODE_MODULES=str(tmp_path)):
        errors = [message for message in checks.run_checks() if message.id == "healthmail.E020"]
    assert len(errors) == 1
    assert "make frontend" in errors[0].hint
    assert "htmx.min.js" in errors[0].msg
    assert [message for message in checks.run_checks() if message.id == "healthmail.E020"] == []
