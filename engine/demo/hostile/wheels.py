"""Hostile cases for the wheel, requirement and dry-run checks.

Each mutation starts from the valid demo package and breaks one rule, keeping the manifest's
hashes and head in step with the change so that only the intended check fails.
"""

import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from engine.core.config import ValidationConfig
from engine.core.hashing import sha256_file
from engine.demo.hostile import HostileCase, committing, edit_manifest
from engine.demo.package import STOPWORDS_MODULE
from engine.demo.wheels import build_wheel

STOPWORDS_WHEEL = "stopwords_mini-1.0.0-py3-none-any.whl"
_MIB = 1024 * 1024
_DOS_DATE_1980 = (0, (1 << 5) | 1)  # 1980-01-01 00:00:00 as (time, date)


def _packages(package: Path) -> Path:
    return package / "packages"


def _relist(package: Path, old: str, new: str | None = None) -> None:
    """Point the manifest entry for `old` at file `new` (default: the same name) and its hash."""
    name = new or old
    digest = sha256_file(_packages(package) / name)

    def edit(data: dict) -> None:
        for entry in data["wheels"]:
            if entry["filename"] == old:
                entry.update(filename=name, sha256=digest)

    edit_manifest(package, edit)


def _rebuild_stopwords(
    package: Path, extra_files: dict[str, str], name: str = "stopwords-mini"
) -> None:
    """Replace the stopwords wheel by one built from `extra_files` too, under its own filename."""
    files = {"stopwords_mini/__init__.py": STOPWORDS_MODULE, **extra_files}
    built = build_wheel(name, "1.0.0", files, _packages(package))
    built.replace(_packages(package) / STOPWORDS_WHEEL)
    _relist(package, STOPWORDS_WHEEL)


def _tamper_byte(package: Path) -> None:
    path = _packages(package) / STOPWORDS_WHEEL
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("stopwords_mini/__init__.py")
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))


def _delete_wheel(package: Path) -> None:
    (_packages(package) / STOPWORDS_WHEEL).unlink()


def _add_unlisted_wheel(package: Path) -> None:
    build_wheel("extra-tool", "0.1.0", {"extra_tool/__init__.py": ""}, _packages(package))


def _unparseable_name(package: Path) -> None:
    (_packages(package) / STOPWORDS_WHEEL).rename(_packages(package) / "stopwords_mini.whl")
    _relist(package, STOPWORDS_WHEEL, "stopwords_mini.whl")


def _metadata_disagrees(package: Path) -> None:
    _rebuild_stopwords(package, {}, name="stopwords-maxi")


def _escaping_member(package: Path) -> None:
    _rebuild_stopwords(package, {"../escape.py": "print('outside the install folder')\n"})


def _write_raw_zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> None:
    """Write a zip from already-deflated members: (name, deflated bytes, crc32, unpacked size)."""
    time, date = _DOS_DATE_1980
    local, central = bytearray(), bytearray()
    for name, deflated, crc, size in members:
        encoded = name.encode("utf-8")
        offset = len(local)
        local += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, time, date, crc, len(deflated), size,
            len(encoded), 0,
        )  # fmt: skip
        local += encoded + deflated
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 0x314, 20, 0, 8, time, date, crc, len(deflated),
            size, len(encoded), 0, 0, 0, 0, 0o644 << 16, offset,
        )  # fmt: skip
        central += encoded
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0
    )
    path.write_bytes(bytes(local + central + end))


def _deflated(data: bytes) -> tuple[bytes, int, int]:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush(), zlib.crc32(data), len(data)


def _zeros_member(mebibytes: int) -> tuple[bytes, int, int]:
    """A deflate stream of `mebibytes` MiB of zeros, made by repeating one flushed block.

    Compressing a GiB would take seconds; each fully flushed block is byte-identical, so one is
    compressed and repeated. The file stays near 1 KiB per MiB.
    """
    chunk = bytes(_MIB)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    last = packer.compress(chunk) + packer.flush()
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(chunk, crc)
    return block * (mebibytes - 1) + last, crc, mebibytes * _MIB


def _zip_bomb(package: Path) -> None:
    path = _packages(package) / STOPWORDS_WHEEL
    with zipfile.ZipFile(path) as zf:
        members = [(i.filename, *_deflated(zf.read(i))) for i in zf.infolist()]
    mebibytes = ValidationConfig().wheel_max_uncompressed_bytes // _MIB + 1
    assert mebibytes * _MIB < 1 << 32, "a member over 4 GiB would need zip64"
    members.append(("stopwords_mini/zeros.bin", *_zeros_member(mebibytes)))
    _write_raw_zip(path, members)
    _relist(package, STOPWORDS_WHEEL)


def _add_requirement(text: str) -> Callable[[Path], None]:
    def mutate(package: Path) -> None:
        edit_manifest(package, lambda data: data["requirements"].append(text))

    return mutate


def _drop_runner(package: Path) -> None:
    def edit(data: dict) -> None:
        data["requirements"] = [r for r in data["requirements"] if not r.startswith("pytest")]

    edit_manifest(package, edit)


def _python_only_wheel(package: Path) -> None:
    """Retag the stopwords wheel for CPython 3.12 only; the manifest asks for Python 3.11."""
    cp312 = "stopwords_mini-1.0.0-cp312-none-any.whl"
    (_packages(package) / STOPWORDS_WHEEL).rename(_packages(package) / cp312)
    _relist(package, STOPWORDS_WHEEL, cp312)


BROKEN_TEST = "def test_unfinished(:\n    assert True\n"
NETWORK_CONFTEST = '''\
"""Reaches for a socket at import time; loopback is down inside the sandbox."""

import socket

socket.create_connection(("127.0.0.1", 9), timeout=5)
'''
HANG_CONFTEST = "import time\n\ntime.sleep(3600)\n"
# More than the default dry_run_memory_mb (4096), so it is refused at every default limit.
MEMORY_CONFTEST = "BALLAST = bytearray(5 * 1024**3)\n"

CASES: list[HostileCase] = [
    HostileCase(
        name="wheel-sha256-mismatch",
        description="one byte of a wheel changed after the manifest hashed it",
        mutate=_tamper_byte,
        check="wheels",
        expect="sha256",
        path=f"packages/{STOPWORDS_WHEEL}",
    ),
    HostileCase(
        name="wheel-missing",
        description="a wheel the manifest lists is not in packages/",
        mutate=_delete_wheel,
        check="wheels",
        expect="missing from packages/",
        path=f"packages/{STOPWORDS_WHEEL}",
    ),
    HostileCase(
        name="wheel-unlisted",
        description="packages/ holds a wheel the manifest does not list",
        mutate=_add_unlisted_wheel,
        check="wheels",
        expect="not listed in manifest.json",
        path="packages/extra_tool-0.1.0-py3-none-any.whl",
    ),
    HostileCase(
        name="wheel-name-unparseable",
        description="a wheel whose filename is not a wheel name",
        mutate=_unparseable_name,
        check="wheels",
        expect="not a valid wheel name",
        path="packages/stopwords_mini.whl",
    ),
    HostileCase(
        name="wheel-metadata-mismatch",
        description="a wheel whose METADATA names another distribution than its filename",
        mutate=_metadata_disagrees,
        check="wheels",
        expect="METADATA names 'stopwords-maxi'",
        path=f"packages/{STOPWORDS_WHEEL}",
    ),
    HostileCase(
        name="wheel-zip-bomb",
        description="a 1 MiB wheel with a member unpacking past the size limit",
        mutate=_zip_bomb,
        check="wheels",
        expect="zip bomb",
        path=f"packages/{STOPWORDS_WHEEL}",
    ),
    HostileCase(
        name="wheel-member-escapes",
        description="a wheel with a ../ member that would land outside site-packages",
        mutate=_escaping_member,
        check="wheels",
        expect="escape the install folder: ../escape.py",
        path=f"packages/{STOPWORDS_WHEEL}",
    ),
    HostileCase(
        name="requirement-direct-url",
        description="a requirement fetched from a URL",
        mutate=_add_requirement("evil-pkg @ https://example.invalid/evil_pkg-1.0-py3-none-any.whl"),
        check="requirements",
        expect="direct URL",
        path="manifest.json",
    ),
    HostileCase(
        name="requirement-local-path",
        description="a requirement pointing at a local path",
        mutate=_add_requirement("evil-pkg @ file:///tmp/evil_pkg"),
        check="requirements",
        expect="local path",
        path="manifest.json",
    ),
    HostileCase(
        name="runner-not-required",
        description="the test runner of test_command is not among the requirements",
        mutate=_drop_runner,
        check="requirements",
        expect="test runner pytest",
        path="manifest.json",
    ),
    HostileCase(
        name="requirement-unresolvable",
        description="a requirement packages/ cannot satisfy offline",
        mutate=_add_requirement("numpy>=1"),
        check="requirements",
        expect="numpy was not found",
        path="manifest.json",
    ),
    HostileCase(
        name="python-version-unsupported",
        description="a wheel built for CPython 3.12 only, while the manifest says Python 3.11",
        mutate=_python_only_wheel,
        check="requirements",
        expect="cp312",
        path="manifest.json",
    ),
    HostileCase(
        name="tests-fail-to-collect",
        description="a test file with a syntax error at HEAD",
        mutate=committing({"tests/test_broken.py": BROKEN_TEST}, "Add a broken test"),
        check="dry-run",
        expect="test collection failed",
        path="repo/tests/test_broken.py",
    ),
    HostileCase(
        name="collection-uses-network",
        description="conftest.py opens a socket when pytest imports it",
        mutate=committing({"conftest.py": NETWORK_CONFTEST}, "Phone home from conftest"),
        check="dry-run",
        expect="tried to reach the network",
        path="repo/conftest.py",
    ),
    HostileCase(
        name="collection-hangs",
        description="conftest.py sleeps for an hour",
        mutate=committing({"conftest.py": HANG_CONFTEST}, "Sleep in conftest"),
        check="dry-run",
        expect="time limit",
        path="repo",
        config={"dry_run_timeout_s": 2.0},
    ),
    HostileCase(
        name="collection-exhausts-memory",
        description="conftest.py allocates 5 GiB",
        mutate=committing({"conftest.py": MEMORY_CONFTEST}, "Allocate ballast in conftest"),
        check="dry-run",
        expect="ran out of memory",
        path="repo/conftest.py",
    ),
]
