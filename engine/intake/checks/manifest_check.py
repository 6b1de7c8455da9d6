"""Check: the manifest parses, matches schema v1 and is under the size limit."""

import hashlib

from engine.core.errors import ManifestError
from engine.intake.checks.context import PackageContext, failed, passed
from engine.intake.manifest import MANIFEST_FILE, read_manifest
from engine.intake.validation_report import CheckResult

NAME = "manifest"


def check_manifest(ctx: PackageContext) -> list[CheckResult]:
    try:
        manifest = read_manifest(ctx.root, ctx.config.manifest_max_bytes)
    except ManifestError as exc:
        detail = str(exc).replace(f"{ctx.root / MANIFEST_FILE}: ", "")
        return [failed(NAME, detail, MANIFEST_FILE)]
    ctx.manifest = manifest
    ctx.manifest_sha256 = hashlib.sha256((ctx.root / MANIFEST_FILE).read_bytes()).hexdigest()
    return [
        passed(
            NAME,
            f"schema v{manifest.schema_version}: {manifest.name}, {len(manifest.commits)} commits, "
            f"{len(manifest.wheels)} wheels, Python {manifest.python_version}",
        )
    ]
