"""The bundle's install.sh, install-system.sh and README.txt: POSIX sh, no network.

install.sh checks every file against SHA256SUMS, refuses a Python other than the wheels', makes
the virtual environment and has pip install exactly the locked wheels by hash from wheels/.
install-system.sh (root) checks the Debian release and architecture, then has apt install the
missing system tools from debs/ with every configured source replaced by that folder alone, its
lists and cache in a temporary folder, and removals refused.
"""

import re
import shlex

from engine.bundle.debs import SystemTool
from engine.bundle.manifest import BundleManifest

INSTALL_SH = "install.sh"
INSTALL_SYSTEM_SH = "install-system.sh"
README_TXT = "README.txt"

_PLACEHOLDER = re.compile(r"@[A-Z_]+@")

_INSTALL = r"""#!/bin/sh
# Install cra console @VERSION@ from this bundle into a new virtual environment, offline:
#   sh install.sh VENV_DIR
# Every file is checked against SHA256SUMS first; pip then installs exactly the wheels
# requirements.lock pins, each by its sha256, from wheels/ alone. PYTHON names the interpreter
# (default @PYTHON@); it must be Python @PYTHON_VERSION@, the wheels' Python.
set -eu

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

if [ "$#" -ne 1 ]; then
    echo "usage: sh install.sh VENV_DIR" >&2
    exit 2
fi
BUNDLE=$(cd "$(dirname "$0")" && pwd -P)
VENV=$1
PYTHON=${PYTHON:-@PYTHON@}

(cd "$BUNDLE" && sha256sum -c --quiet --strict SHA256SUMS) >&2 ||
    fail "$BUNDLE does not match its SHA256SUMS (the lines above name the files):" \
        "copy the bundle again"
for wheel in "$BUNDLE"/wheels/*; do
    [ -e "$wheel" ] || continue
    awk -v f="wheels/${wheel##*/}" '$2 == f { found = 1 } END { exit !found }' \
        "$BUNDLE/SHA256SUMS" ||
        fail "wheels/${wheel##*/} is not in SHA256SUMS: it was added after the bundle was made"
done

command -v "$PYTHON" >/dev/null 2>&1 ||
    fail "$PYTHON not found: this bundle's wheels are for Python @PYTHON_VERSION@" \
        "(on Debian, sh install-system.sh as root installs it; else set PYTHON to one)"
found=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
    fail "$PYTHON did not run"
[ "$found" = "@PYTHON_VERSION@" ] ||
    fail "$PYTHON is Python $found, but this bundle's wheels are for Python @PYTHON_VERSION@" \
        "(bundle.json): set PYTHON to a Python @PYTHON_VERSION@"
if [ -e "$VENV" ] && [ -n "$(ls -A "$VENV")" ]; then
    fail "$VENV exists and is not empty: give a new folder"
fi

"$PYTHON" -m venv "$VENV" ||
    fail "$PYTHON could not make a virtual environment (on Debian its venv module is the" \
        "package python@PYTHON_VERSION@-venv: sh install-system.sh as root installs it)"
echo "installing @WHEEL_COUNT@ wheels into $VENV with pip, offline (a minute or two)"
"$VENV/bin/python" -m pip --isolated install --quiet --disable-pip-version-check --no-input \
    --no-index --find-links "$BUNDLE/wheels" --require-hashes -r "$BUNDLE/requirements.lock" ||
    fail "pip could not install the locked wheels into $VENV (its reason is above)"
"$VENV/bin/cra" --version
echo "installed: $VENV/bin/cra demo opens the demo workspace"
"""

_INSTALL_SYSTEM = r"""#!/bin/sh
# Install what this machine lacks of @TOOLS@ from debs/, with no
# network. As root:  sh install-system.sh [-y] [--simulate]
# debs/ is a flat apt repository made on Debian @CODENAME@ (@ARCH@); apt sees it alone (every
# configured source is replaced, its lists and cache live in a temporary folder), checks each
# file by the SHA256 in debs/Packages, installs what is missing and removes nothing.
set -eu

fail() {
    echo "install-system.sh: $*" >&2
    exit 1
}

BUNDLE=$(cd "$(dirname "$0")" && pwd -P)
YES=
SIMULATE=
for arg in "$@"; do
    case $arg in
    -y) YES=-y ;;
    --simulate) SIMULATE=-s ;;
    *)
        echo "usage: sh install-system.sh [-y] [--simulate]" >&2
        exit 2
        ;;
    esac
done

case $BUNDLE in
*[[:space:]]*)
    fail "$BUNDLE has a space in its path, which apt's source line cannot hold: move the bundle"
    ;;
esac
(cd "$BUNDLE" && sha256sum -c --quiet --strict SHA256SUMS) >&2 ||
    fail "$BUNDLE does not match its SHA256SUMS (the lines above name the files):" \
        "copy the bundle again"
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || codename=
[ "$codename" = @CODENAME@ ] ||
    fail "this machine is Debian '${codename:-unknown}', but debs/ was made for @CODENAME@:" \
        "make the bundle on a @CODENAME@ machine"
arch=$(dpkg --print-architecture) || fail "dpkg is missing: this is no Debian"
[ "$arch" = @ARCH@ ] || fail "this machine is $arch, but debs/ holds @ARCH@ packages"
if [ -z "$SIMULATE" ] && [ "$(id -u)" -ne 0 ]; then
    fail "run it as root: apt-get installs system packages"
fi

missing=
@CHECKS@
if [ -z "$missing" ]; then
    echo "@TOOLS@: all present, nothing to install"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "deb [trusted=yes] file:$BUNDLE/debs ./" >"$work/bundle.list"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
set -- -o "Dir::Etc::SourceList=$work/bundle.list" -o Dir::Etc::SourceParts=/dev/null \
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" \
    -o APT::Sandbox::User=root -o Acquire::Languages=none
apt-get "$@" -qq update || fail "apt-get could not read debs/ as a repository"
echo "installing$missing from $BUNDLE/debs"
# shellcheck disable=SC2086  # $missing is a list of package names
apt-get "$@" install --no-install-recommends --no-remove $YES $SIMULATE $missing ||
    fail "apt-get did not install$missing (its reason is above)"
[ -n "$SIMULATE" ] || echo "installed:$missing"
"""

_README = """cra console @VERSION@: an offline install bundle, made @CREATED@.

Wheels for Python @PYTHON_VERSION@ on @PLATFORM@ (torch @TORCH@)@EXTRAS@;
@DEBS@.

On the air-gapped machine, from this folder:

  sh install-system.sh       as root, once: what the machine lacks of
                             @TOOLS@, from debs/
                             (-y: without asking; --simulate: only show what it would do)
  sh install.sh ~/cra-venv   the console in a new virtual environment, from wheels/ only
  ~/cra-venv/bin/cra demo    the demo workspace, to try the whole loop
@VLLM@
Both scripts check every file against SHA256SUMS first and use no network. bundle.json says what
the bundle holds; requirements.lock pins every wheel by its sha256.
"""


def _fill(template: str, **values: str) -> str:
    text = template
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", value)
    left = _PLACEHOLDER.findall(text)
    assert not left, f"unfilled placeholders {left}"
    return text


def install_sh(manifest: BundleManifest, python: str | None = None) -> str:
    """install.sh for the bundle `manifest` describes; `python` is its default interpreter."""
    return _fill(
        _INSTALL,
        version=manifest.console_version,
        python=shlex.quote(python or f"python{manifest.python_version}"),
        python_version=manifest.python_version,
        wheel_count=str(manifest.wheel_count),
    )


def _tools_shown(tools: list[str]) -> str:
    return ", ".join(tools[:-1]) + f" and {tools[-1]}" if len(tools) > 1 else "".join(tools)


def install_system_sh(codename: str, architecture: str, tools: list[SystemTool]) -> str:
    """install-system.sh installing `tools`, each when its check fails, for that release."""
    checks = "\n".join(
        f'{tool.present} >/dev/null 2>&1 || missing="$missing {tool.package}"' for tool in tools
    )
    return _fill(
        _INSTALL_SYSTEM,
        codename=shlex.quote(codename),
        arch=shlex.quote(architecture),
        tools=_tools_shown([tool.package for tool in tools]),
        checks=checks,
    )


def readme_txt(manifest: BundleManifest) -> str:
    """README.txt: what the bundle is and the lines to use it."""
    if manifest.debian is None:
        debs = "no debs/ (made with --no-debs): bubblewrap and git must come another way"
        tools = "nothing (no debs/)"
    else:
        debs = (
            f"debs/ for Debian {manifest.debian.codename} ({manifest.debian.architecture}), "
            f"{manifest.debian.deb_count} packages"
        )
        tools = _tools_shown(manifest.debian.tools)
    return _fill(
        _README,
        version=manifest.console_version,
        created=manifest.created_at,
        python_version=manifest.python_version,
        platform=manifest.platform,
        torch=manifest.torch_version,
        extras=f", extras {', '.join(manifest.extras)}" if manifest.extras else "",
        debs=debs,
        tools=tools,
        vllm=""
        if manifest.vllm_version is None
        else (
            f"  ~/cra-venv/bin/cra serve --install-vllm vllm\n"
            f"                             vLLM {manifest.vllm_version} in an environment of its "
            "own\n                             ([serving] vllm_env), from vllm/ only\n"
        ),
    )
