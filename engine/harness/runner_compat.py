"""Runner options that give a commit's tests the semantics its history was written against.

A package carries one pytest, as of its newest commits, and pytest 9 changed what an old
configuration means: its `strict` option (and `--strict`) now turns on every strictness check,
refusing duplicate parametrization ids among them, where pytest 8 and earlier ignored the ini
key and read `--strict` as `--strict-markers`. attrs's 2018–2019 `setup.cfg` says `strict = true`,
so pytest 9 refused to collect 4 of its commits' test modules. No configuration written before
pytest 9 could have asked for `strict_parametrization_ids`, which did not exist, so for those
commits it is turned off; the other strictness checks had older names a configuration may set
(`xfail_strict`, `--strict-markers`, `--strict-config`), which an override would silence, so they
are left as configured.
"""

from datetime import UTC, datetime

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from engine.harness.package import CorpusPackage
from engine.intake.manifest import ManifestCommit

PYTEST_9_RELEASED = datetime(2025, 11, 5, tzinfo=UTC)
"""pytest 9.0.0's release (its changelog's date)."""


def runner_options(package: CorpusPackage, commit: ManifestCommit) -> list[str]:
    """Options to add to the runner's command line for `commit`'s tests (see the module doc)."""
    if package.manifest.runner != "pytest" or commit.date >= PYTEST_9_RELEASED:
        return []
    version = wheel_version(package, "pytest")
    if version is None or version.major < 9:
        return []
    return ["-o", "strict_parametrization_ids=false"]


def wheel_version(package: CorpusPackage, name: str) -> Version | None:
    """The version of `name` among the package's wheels; None when it ships none."""
    wanted = canonicalize_name(name)
    for wheel in package.manifest.wheels:
        try:
            found, version, _, _ = parse_wheel_filename(wheel.filename)
        except InvalidWheelFilename:
            continue
        if found == wanted:
            return version
    return None
