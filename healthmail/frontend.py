"""Front-end packages from the npm registry, served from our own static files.

`package.json` pins the packages and `make` installs them with `npm ci` into `node_modules/`. Only
the files listed in VENDOR_FILES are served, under `static/vendor/<name>`: a page can never load a
file nobody chose, and collectstatic does not copy the whole of `node_modules`. A template names
a file as `{% static 'vendor/chart.umd.min.js' %}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage, Storage

PREFIX = "vendor"

# Served name -> path inside node_modules. Add a package to package.json and its file here.
VENDOR_FILES: dict[str, str] = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
    "axe.min.js": "axe-core/axe.min.js",
    "grapes.min.js": "grapesjs/dist/grapes.min.js",
    "grapes.min.css": "grapesjs/dist/css/grapes.min.css",
    "grapesjs-mjml.min.js": "grapesjs-mjml/dist/index.js",
    "drawflow.min.js": "drawflow/dist/drawflow.min.js",
    "drawflow.min.css": "drawflow/dist/drawflow.min.css",
}


def node_modules() -> Path:
    return Path(settings.FRONTEND_NODE_MODULES)


def source_path(name: str) -> Path | None:
    relative = VENDOR_FILES.get(name)
    return node_modules() / relative if relative else None


class VendorStorage(FileSystemStorage):
    """Reads one listed file from node_modules under its served name."""

    prefix: str  # where collectstatic puts the files (read by it, not by FileSystemStorage)

    def path(self, name: str) -> str:
        source = source_path(name)
        if source is None:
            raise FileNotFoundError(name)
        return str(source)

    def exists(self, name: str) -> bool:
        source = source_path(name)
        return source is not None and source.is_file()


class VendorFinder(BaseFinder):
    """A staticfiles finder that knows only the files in VENDOR_FILES."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = VendorStorage(location=str(node_modules()))
        self.storage.prefix = PREFIX

    def find(  # type: ignore[override]  # the stubs say None for "not here": Django's finders.find wants []
        self, path: str, find_all: bool = False, **kwargs: Any
    ) -> str | list[str]:
        # Django's finders answer [] for "not here", whether or not find_all is asked.
        prefix = PREFIX + "/"
        source = source_path(path[len(prefix) :]) if path.startswith(prefix) else None
        if source is None or not source.is_file():
            return []
        return [str(source)] if find_all else str(source)

    def list(self, ignore_patterns: Iterable[str] | None) -> Iterator[tuple[str, Storage]]:
        for name in VENDOR_FILES:
            if self.storage.exists(name):
                yield name, self.storage


def missing_files() -> list[str]:
    return sorted(
        name for name, relative in VENDOR_FILES.items() if not (node_modules() / relative).is_file()
    )
