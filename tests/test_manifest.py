"""Manifest schema v1: parsing, refusals with the rule named, the JSON Schema."""

import json
from pathlib import Path

import demo_counts
import pytest

from engine.core.errors import ManifestError
from engine.intake.manifest import manifest_json_schema, parse_manifest, read_manifest


def _data(valid_package: Path) -> dict:
    return json.loads((valid_package / "manifest.json").read_text())


def test_valid_manifest_parses(valid_package: Path):
    manifest = read_manifest(valid_package, max_bytes=1 << 20)
    assert manifest.name == "textkit"
    assert manifest.runner == "pytest"
    assert len(manifest.commits) == len(demo_counts.KEPT)
    assert {c.planning_type for c in manifest.commits} == set(demo_counts.PLANNING_TYPES)


def test_unknown_schema_version_is_refused(valid_package: Path):
    data = _data(valid_package) | {"schema_version": 7}
    with pytest.raises(ManifestError, match="unknown schema_version 7; this console reads 1"):
        parse_manifest(json.dumps(data).encode())


def test_missing_schema_version_is_refused(valid_package: Path):
    data = _data(valid_package)
    del data["schema_version"]
    with pytest.raises(ManifestError, match="schema_version is missing"):
        parse_manifest(json.dumps(data).encode())


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("head", "xyz", "head: String should match pattern"),
        ("python_version", "2.7.1", "python_version: String should match pattern"),
        ("test_command", "make test", "must run one of pytest"),
        ("requirements", ["not a requirement!"], "is not PEP 508"),
        ("commits", [], "commits: List should have at least 1 item"),
        ("surprise", 1, "surprise: Extra inputs are not permitted"),
    ],
)
def test_schema_violations_name_the_key(valid_package: Path, field, value, rule):
    data = _data(valid_package) | {field: value}
    with pytest.raises(ManifestError, match=rule):
        parse_manifest(json.dumps(data).encode(), "drive/manifest.json")


def test_commit_path_escape_is_refused(valid_package: Path):
    data = _data(valid_package)
    data["commits"][0]["test_files"] = ["../outside.py"]
    with pytest.raises(ManifestError, match="commits.0.test_files.0"):
        parse_manifest(json.dumps(data).encode())


def test_not_json_and_not_object(valid_package: Path):
    with pytest.raises(ManifestError, match="not valid JSON"):
        parse_manifest(b"{oops")
    with pytest.raises(ManifestError, match="must hold a JSON object, found list"):
        parse_manifest(b"[]")
    with pytest.raises(ManifestError, match="not UTF-8"):
        parse_manifest(b"\xff\xfe")


def test_oversized_manifest_is_refused_before_parsing(valid_package: Path):
    with pytest.raises(ManifestError, match="over the manifest limit of 100"):
        read_manifest(valid_package, max_bytes=100)


def test_json_schema_names_the_version():
    schema = manifest_json_schema()
    assert schema["properties"]["schema_version"]["const"] == 1
    assert "commits" in schema["required"]
