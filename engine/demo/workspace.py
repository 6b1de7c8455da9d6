"""The demo workspace: a workspace plus a folder standing in for a USB drive.

The drive holds one valid repo package built from the generated textkit repository and several
hostile packages, each breaking one rule, so a newcomer sees both an approval and refusals. The
workspace also holds a tiny model (random weights, a tokenizer trained on the spot) as both bases,
so the whole loop, training and evaluation included, runs on a CPU in minutes.
"""

import shutil
import tempfile
from pathlib import Path

import tomli_w
from transformers.utils import logging as hf_logging

from engine.demo.hostile.catalog import BY_NAME
from engine.demo.package import build_package, build_wheels
from engine.errors import WorkspaceError
from engine.training.tiny_model import build_tiny_model
from engine.workspace import Workspace

MARKER = ".cra-demo"
READY = ".cra-demo-ready"
DRIVE = "usb-drive"
DEMO_HOSTILE = {
    "hooked-repo": "git-hook",
    "tampered-wheel": "wheel-sha256-mismatch",
    "sdist-inside": "sdist-in-packages",
    "escaping-link": "symlink-escapes",
    "injected-readme": "flag-prompt-injection",
}


TINY_MODEL = "models/tiny"


def demo_config(drive: Path) -> str:
    """The demo's cra.toml. Its corpus is one small repo from one domain, so curation may not
    hold a domain to 20%; scope's frozen eval set holds its 2 newest tasks (of the 22 usable
    ones), and curation holds nothing else out (eval_share 0), so the rest train. Its
    tests are deterministic, so gold validation runs each side once, not three times: the gold
    campaign over its 24 commits takes about a minute, not three. Both bases are the tiny model
    built here, trained and evaluated on the CPU; its server is the CPU stand-in
    (`cra serve --launch --cpu`) on a port of its own. The seed's scope minimums are off: the
    tiny model does not reach them, and a version below them is rejected for good. Written by
    a TOML library, so any path (quotes, backslashes) stays one string."""
    bases = {"reasoning": TINY_MODEL, "coding": TINY_MODEL}
    return tomli_w.dumps(
        {
            "operator": "demo",
            "usb": {"extra_dirs": [str(drive)]},
            "harness": {"flaky_runs": 1},
            "curation": {"max_domain_share": 1.0, "eval_share": 0.0},
            "training": {"base_models": bases},
            "evaluation": {
                "backend": "local",
                "max_tokens": 32,
                "timeout_s": 120,
                "eval_sizes": {"scope": 2},
            },
            "serving": {"base_url": "http://127.0.0.1:8765", "timeout_s": 10, "bases": bases},
            "gate": {"minimums": {"scope.accuracy": 0, "scope.relevant_recall": 0}},
        }
    )


def build_demo_drive(drive: Path) -> None:
    """Fill `drive` with the valid textkit package and the demo's hostile packages, each a copy
    of the valid one (a package is built the same every time) with one rule broken."""
    with tempfile.TemporaryDirectory(prefix="cra-demo-wheels-") as scratch:
        wheels = Path(scratch)
        build_wheels(wheels)
        valid = build_package(drive / "textkit", wheels)
        for folder, case_name in DEMO_HOSTILE.items():
            package = Path(shutil.copytree(valid, drive / folder, symlinks=True))
            BY_NAME[case_name].mutate(package)


def prepare_demo(root: Path, fresh: bool = False) -> tuple[Workspace, Path]:
    """Open the demo workspace at `root`, building it first if needed; return it and its drive."""
    root = root.expanduser().absolute()
    if root.exists() and not (root / MARKER).exists() and any(root.iterdir()):
        raise WorkspaceError(f"{root}: exists and is not a demo workspace; choose another folder")
    if fresh and root.exists():
        shutil.rmtree(root)
    drive = root / DRIVE
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("built by `cra demo`\n", encoding="utf-8")
    if not (root / READY).exists():
        if drive.exists():
            shutil.rmtree(drive)
        build_demo_drive(drive)
        hf_logging.disable_progress_bar()
        build_tiny_model(root / TINY_MODEL)
        (root / "cra.toml").write_text(demo_config(drive), encoding="utf-8")
        (root / READY).write_text("", encoding="utf-8")
    return Workspace.open(root), drive
