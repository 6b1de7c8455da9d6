"""The demo workspace: a workspace plus a folder standing in for a USB drive.

The drive holds one valid repo package built from the generated textkit repository and several
hostile packages, each breaking one rule, so a newcomer sees both an approval and refusals. The
workspace also holds a tiny model as both bases (`engine.demo.base`: trained on the spot to list
files as JSON, no stage's answers), so the whole loop, training and evaluation included, runs on
a CPU in minutes and its scope adapter has something to learn.
"""

import shutil
import tempfile
from pathlib import Path

import tomli_w
from transformers.utils import logging as hf_logging

from engine.core.errors import WorkspaceError
from engine.core.workspace import Workspace
from engine.demo.base import build_demo_base
from engine.demo.hostile.catalog import BY_NAME
from engine.demo.package import build_package, build_wheels
from engine.serving.command import free_base_port

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
DEMO_HYPER = {
    "learning_rate": 1e-2,
    "max_steps": 200,
    "batch_size": 4,
    "gradient_accumulation": 1,
    "warmup_ratio": 0.0,
    "save_steps": 200,
}
"""The demo's scope training settings (`[training.hyper.scope]`): LoRA Training Strategy §7.3's
defaults (lr 2e-4, two epochs) are for a real base; the tiny one learns the scope answer in 200
steps of 4 rows at 1e-2 (docs/decisions.md). A run from the console's Training form takes them
too."""


def demo_config(drive: Path, port: int) -> str:
    """The demo's cra.toml. Its corpus is one small repo from one domain, so curation may not
    hold a domain to 20%. Scope's frozen eval set holds its 10 newest tasks (of the 22 usable
    ones; `max_eval_share` 0.5 allows 11), the fewest the gate calls anything but underpowered,
    and curation holds nothing else out (eval_share 0), so the other 12 train. The gate's
    minimums for scope (LoRA Training Strategy §9.1's pass thresholds, meant for a real base) are
    off: the tiny base shows the gate deciding on a real, confident gain, not a useful model. An
    answer is some twenty tokens; `max_tokens` leaves room for a longer one. Scope trains with
    `DEMO_HYPER`. Its tests are deterministic, so gold validation never runs a test again
    (`flaky_runs` 1): the gold campaign over its 23 commits with code takes about a minute. Both
    bases are the tiny model built here, trained and evaluated on the CPU; its server is the CPU
    stand-in (`cra serve --launch --cpu`) on `port`, free when the workspace was built, so two demo
    workspaces on one machine do not answer for each other. Written by a TOML library, so any
    path (quotes, backslashes) stays one string."""
    bases = {"reasoning": TINY_MODEL, "coding": TINY_MODEL}
    return tomli_w.dumps(
        {
            "operator": "demo",
            "usb": {"extra_dirs": [str(drive)]},
            "harness": {"flaky_runs": 1},
            "curation": {"max_domain_share": 1.0, "eval_share": 0.0},
            "training": {"base_models": bases, "hyper": {"scope": DEMO_HYPER}},
            "evaluation": {
                "backend": "local",
                "max_tokens": 96,
                "timeout_s": 120,
                "eval_sizes": {"scope": 10},
                "max_eval_share": 0.5,
            },
            "gate": {"minimums": {"scope.accuracy": 0.0, "scope.relevant_recall": 0.0}},
            "serving": {"base_url": f"http://127.0.0.1:{port}", "timeout_s": 10, "bases": bases},
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
        build_demo_base(root / TINY_MODEL)
        config = demo_config(drive, free_base_port())
        (root / "cra.toml").write_text(config, encoding="utf-8")
        (root / READY).write_text("", encoding="utf-8")
    return Workspace.open(root), drive
