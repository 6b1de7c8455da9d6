"""Which of the two supported training sets a machine has, named one way for the worker's first
lines and `cra doctor`, and the backend `[training] backend` takes on it.

The CPU set: no CUDA, trl >= 1.16 (1.15's loss kernel needs triton, which needs CUDA); runs
train on trl with 4-bit quantisation, the 8-bit optimiser and bf16 replaced, each replacement
named. The GPU set: CUDA and the `gpu` extra, Unsloth and bitsandbytes. `auto` takes the CPU set
without CUDA and requires the GPU set with it; `unsloth` requires CUDA and the GPU set; `trl`
trains on plain trl either way. Nothing falls back: a machine without what the setting needs
is refused, naming what is missing and the way around it. Versions come from the packages'
metadata; only `TrainingSet.detect` imports torch, and nothing here imports transformers, trl
or peft, which Unsloth must load first to patch them.
"""

import importlib.metadata
from dataclasses import dataclass

from packaging.version import Version

from engine.core.errors import CraError
from engine.training.contract import Backend, BackendSetting

CPU_TRL = Version("1.16")
"""The oldest trl that trains on the CPU: 1.15.0's loss kernel needs triton, which needs CUDA."""
RECORDED = "a run records the setting when it starts"
GPU_INSTALL = "`pip install 'cra-console[gpu]'`, or the offline bundle made with `cra bundle --gpu`"


class TrainingSetRefused(CraError):
    """This machine's packages and GPU cannot train on the backend `[training] backend` names."""


def installed_version(name: str) -> str | None:
    """The installed version of distribution `name`; None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class TrainingSet:
    """The packages a training set is made of, each installed version or None, and the GPU
    torch trains on (None without CUDA)."""

    torch: str | None
    trl: str | None
    unsloth: str | None
    bitsandbytes: str | None
    device: str | None

    @classmethod
    def detect(cls) -> "TrainingSet":
        """This machine's set; imports torch to ask it for a CUDA device."""
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        return cls(
            torch=installed_version("torch"),
            trl=installed_version("trl"),
            unsloth=installed_version("unsloth"),
            bitsandbytes=installed_version("bitsandbytes"),
            device=device,
        )

    @property
    def cuda(self) -> bool:
        return self.device is not None

    def missing_gpu(self) -> list[str]:
        """The packages of the GPU set this machine lacks."""
        gpu = {"unsloth": self.unsloth, "bitsandbytes": self.bitsandbytes}
        return [name for name, version in gpu.items() if version is None]

    def describe(self) -> str:
        """The set in a line: `the CPU set (…)`, `the GPU set (…)`, or CUDA without it."""
        torch = f"torch {self.torch or 'not installed'}"
        trl = f"trl {self.trl}" if self.trl else "no trl"
        if self.device is None:
            unsloth = f"unsloth {self.unsloth} unused" if self.unsloth else "no unsloth"
            return f"the CPU set (no CUDA; {torch}, {trl}, {unsloth})"
        missing = self.missing_gpu()
        if missing:
            return (
                f"CUDA on {self.device} without the GPU set (no {' or '.join(missing)}; "
                f"{torch}, {trl})"
            )
        return (
            f"the GPU set (unsloth {self.unsloth}, bitsandbytes {self.bitsandbytes}, {trl}, "
            f"{torch} on {self.device})"
        )

    def backend(self, setting: BackendSetting) -> tuple[Backend, str]:
        """The backend `[training] backend = setting` trains on here, and why; refused when
        this machine lacks what it needs."""
        said = f'[training] backend = "{setting}"'
        trl = self.trl
        if trl is None:
            raise TrainingSetRefused("trl is not installed; the console requires it: reinstall it")
        if not self.cuda:
            if setting == "unsloth":
                raise TrainingSetRefused(
                    f"{said} needs CUDA, and torch {self.torch} sees no GPU; set it to "
                    f'"auto" or "trl" in cra.toml to train on the CPU ({RECORDED})'
                )
            if Version(trl) < CPU_TRL:
                raise TrainingSetRefused(
                    f"no CUDA, and trl {trl} cannot train on the CPU (its loss kernel needs "
                    f"triton); the CPU set needs trl >= {CPU_TRL} (the GPU set pins 1.15.0 for "
                    "Unsloth)"
                )
            return "trl", f"{said}; no CUDA: the CPU set"
        if setting == "trl":
            return "trl", f"{said}; CUDA on {self.device}"
        missing = self.missing_gpu()
        if missing:
            raise TrainingSetRefused(
                f"{said} on CUDA ({self.device}) needs the GPU set, and "
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
                f'install it ({GPU_INSTALL}), or set [training] backend = "trl" in cra.toml to '
                f"train on plain trl without Unsloth ({RECORDED})"
            )
        return "unsloth", f"{said}; CUDA on {self.device} and the GPU set"
