"""Name a repository's license from what it declares at HEAD.

In order: `pyproject.toml` `[project] license` (an SPDX expression, `{text = …}` or
`{file = …}`), its `License ::` classifiers, `setup.cfg` `[metadata] license`, and the heading of
a LICENSE (or COPYING) file when that heading names a license. None when nothing does: the
operator then says which with `--license`.
"""

import configparser
import re

from pydantic import BaseModel, ConfigDict

from engine.packaging.errors import PackagingError
from engine.packaging.tree_files import TreeFiles

PYPROJECT = "pyproject.toml"
SETUP_CFG = "setup.cfg"
LICENSE_FILES = (
    *("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENSE.rst"),
    *("LICENCE", "LICENCE.txt", "LICENCE.md", "COPYING", "COPYING.txt", "COPYING.md"),
)
MAX_CHARS = 200
_NAMES_A_LICENSE = re.compile(
    r"\b(licen[cs]e|MIT|BSD|Apache|GPL|LGPL|AGPL|MPL|ISC|Unlicense|CC0|Zlib|PSF)\b", re.IGNORECASE
)


class FoundLicense(BaseModel):
    """A license name and the file (and key) it was read from."""

    model_config = ConfigDict(frozen=True)

    name: str
    source: str


def _heading(text: str) -> str | None:
    """The first non-blank line of a license text, when it names a license."""
    for line in text.splitlines():
        heading = line.strip().strip("#=*-").strip()
        if not heading:
            continue
        if heading.lower().startswith("copyright") or len(heading) > MAX_CHARS:
            return None
        return heading if _NAMES_A_LICENSE.search(heading) else None
    return None


def _from_pyproject(files: TreeFiles) -> FoundLicense | None:
    project = files.read_toml(PYPROJECT).get("project", {})
    if not isinstance(project, dict):
        raise PackagingError(f"{PYPROJECT} [project] must be a table")
    where = f"{PYPROJECT} [project] license"
    value = project.get("license")
    if isinstance(value, str) and 0 < len(value.strip()) <= MAX_CHARS:
        return FoundLicense(name=value.strip(), source=where)
    if isinstance(value, dict):
        text = value.get("text")
        if isinstance(text, str) and (first := text.strip().split("\n", 1)[0].strip()):
            return FoundLicense(name=first[:MAX_CHARS], source=f"{where}.text")
        path = value.get("file")
        if isinstance(path, str) and files.has(path) and (heading := _heading(files.read(path))):
            return FoundLicense(name=heading, source=f"{path} (named by {where}.file)")
    classifiers = project.get("classifiers", [])
    if isinstance(classifiers, list):
        names = [
            c.rsplit("::", 1)[1].strip()
            for c in classifiers
            if isinstance(c, str) and c.startswith("License ::") and c.count("::") >= 2
        ]
        if names and len(shown := " OR ".join(names)) <= MAX_CHARS:
            return FoundLicense(name=shown, source=f"{PYPROJECT} [project] classifiers")
    return None


def _from_setup_cfg(files: TreeFiles) -> FoundLicense | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(files.read(SETUP_CFG), source=SETUP_CFG)
    except configparser.Error as exc:
        raise PackagingError(f"{SETUP_CFG} cannot be parsed: {exc.message}") from exc
    value = parser.get("metadata", "license", fallback="").strip()
    if 0 < len(value) <= MAX_CHARS and "\n" not in value:
        return FoundLicense(name=value, source=f"{SETUP_CFG} [metadata] license")
    return None


def infer_license(files: TreeFiles) -> FoundLicense | None:
    """The license the repository declares at HEAD, or None when nothing names one."""
    if files.has(PYPROJECT) and (found := _from_pyproject(files)):
        return found
    if files.has(SETUP_CFG) and (found := _from_setup_cfg(files)):
        return found
    for path in LICENSE_FILES:
        if files.has(path) and (heading := _heading(files.read(path))):
            return FoundLicense(name=heading, source=f"{path} heading")
    return None
