"""The training set a machine has, the backend `[training] backend` takes on it, and the
doctor's line for it.

No GPU here: the machines are `TrainingSet` values as `TrainingSet.detect` would read them on
the CPU machine, the GPU machine and a GPU machine missing part of the GPU set; the doctor runs
for real on this (CPU) machine.
"""

from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import get_args

import pytest

from engine.core.config import TrainingConfig
from engine.core.workspace import Workspace
from engine.reports.doctor import run_checks
from engine.training.contract import BackendSetting, Hyper, RunSpec
from engine.training.training_set import TrainingSet, TrainingSetRefused
from engine.training.worker import RunRefused, pick_backend

H100 = "NVIDIA H100 80GB HBM3"
CPU = TrainingSet(torch="2.13.0+cpu", trl="1.16.0", unsloth=None, bitsandbytes=None, device=None)
GPU = TrainingSet(
    torch="2.13.0+cu130", trl="1.15.0", unsloth="2026.10.9", bitsandbytes="0.50.2", device=H100
)
CUDA_ONLY = replace(GPU, trl="1.16.0", unsloth=None, bitsandbytes=None)
NO_UNSLOTH = replace(GPU, unsloth=None)


def spec(**fields: object) -> RunSpec:
    """A scope SFT run's spec with `fields` changed."""
    values: dict[str, object] = {
        "stage": "scope",
        "method": "sft",
        "base_model": "reasoning",
        "base_model_path": "models/reasoning",
        "dataset_id": "scope-d1",
        "dataset_path": "datasets/scope-d1",
        "dataset_sha256": "0" * 64,
    }
    return RunSpec.model_validate({**values, **fields})


class TestDescribe:
    def test_each_set_is_named_with_the_versions_that_make_it(self) -> None:
        """The line the worker's log starts with and the doctor shows: which set, and what
        in it decided so."""
        assert CPU.describe() == "the CPU set (no CUDA; torch 2.13.0+cpu, trl 1.16.0, no unsloth)"
        assert GPU.describe() == (
            f"the GPU set (unsloth 2026.10.9, bitsandbytes 0.50.2, trl 1.15.0, "
            f"torch 2.13.0+cu130 on {H100})"
        )
        assert CUDA_ONLY.describe() == (
            f"CUDA on {H100} without the GPU set (no unsloth or bitsandbytes; "
            "torch 2.13.0+cu130, trl 1.16.0)"
        )

    def test_this_machine_is_the_cpu_set(self) -> None:
        """Detected from the installed packages' metadata and torch's view of CUDA."""
        machine = TrainingSet.detect()
        assert machine == TrainingSet(
            torch=metadata.version("torch"),
            trl=metadata.version("trl"),
            unsloth=None,
            bitsandbytes=None,
            device=None,
        )
        assert machine.describe().startswith("the CPU set (no CUDA; torch ")


class TestBackend:
    @pytest.mark.parametrize(
        ("machine", "setting", "backend", "why"),
        [
            (CPU, "auto", "trl", '[training] backend = "auto"; no CUDA: the CPU set'),
            (CPU, "trl", "trl", '[training] backend = "trl"; no CUDA: the CPU set'),
            (
                GPU,
                "auto",
                "unsloth",
                f'[training] backend = "auto"; CUDA on {H100} and the GPU set',
            ),
            (
                GPU,
                "unsloth",
                "unsloth",
                f'[training] backend = "unsloth"; CUDA on {H100} and the GPU set',
            ),
            (GPU, "trl", "trl", f'[training] backend = "trl"; CUDA on {H100}'),
            (CUDA_ONLY, "trl", "trl", f'[training] backend = "trl"; CUDA on {H100}'),
        ],
    )
    def test_a_setting_the_machine_can_train_names_its_backend_and_why(
        self, machine: TrainingSet, setting: BackendSetting, backend: str, why: str
    ) -> None:
        assert machine.backend(setting) == (backend, why)

    @pytest.mark.parametrize(
        ("machine", "setting", "reason"),
        [
            (CPU, "unsloth", '"unsloth" needs CUDA, and torch 2.13.0+cpu sees no GPU'),
            (replace(CPU, trl="1.15.0"), "auto", "trl 1.15.0 cannot train on the CPU"),
            (replace(CPU, trl="1.15.0"), "trl", "the CPU set needs trl >= 1.16"),
            (replace(GPU, trl=None), "auto", "trl is not installed"),
            (CUDA_ONLY, "auto", "unsloth and bitsandbytes are not installed"),
            (CUDA_ONLY, "unsloth", "unsloth and bitsandbytes are not installed"),
            (NO_UNSLOTH, "auto", "needs the GPU set, and unsloth is not installed"),
            (replace(GPU, bitsandbytes=None), "unsloth", "bitsandbytes is not installed"),
        ],
    )
    def test_a_machine_without_what_the_setting_needs_is_refused(
        self, machine: TrainingSet, setting: BackendSetting, reason: str
    ) -> None:
        """Never trained on something else instead: the refusal names what is missing."""
        with pytest.raises(TrainingSetRefused) as caught:
            machine.backend(setting)
        assert reason in str(caught.value)
        if machine.cuda and machine.trl is not None:
            assert "pip install 'cra-console[gpu]'" in str(caught.value)
            assert "cra bundle --gpu" in str(caught.value)
            assert '[training] backend = "trl"' in str(caught.value)


class TestPickBackend:
    def test_a_run_continuing_an_adapter_trains_on_trl_in_the_gpu_set(self) -> None:
        """Unsloth's loader does not load an adapter trainable; the set is still required."""
        run = spec(
            stage="execute_code",
            method="dpo",
            continues="execute_code-v1",
            continues_path="adapters/execute_code/v1",
        )
        backend, why = pick_backend(run, GPU)
        assert backend == "trl"
        assert why.endswith("; continues adapter execute_code-v1, which peft loads trainable")
        with pytest.raises(TrainingSetRefused):
            pick_backend(run, NO_UNSLOTH)

    def test_trl_on_cuda_without_bitsandbytes_refuses_4bit_and_the_8bit_optimiser(self) -> None:
        """They are not replaced behind the operator's back on a GPU; the refusal says how to
        ask for what this machine does."""
        with pytest.raises(RunRefused) as caught:
            pick_backend(spec(backend="trl"), CUDA_ONLY)
        assert "asks for quantize_4bit and optimizer adamw_8bit on CUDA" in str(caught.value)
        assert "--set quantize_4bit=false --set optimizer=adamw_torch" in str(caught.value)
        with pytest.raises(RunRefused, match="asks for optimizer adamw_8bit on CUDA"):
            pick_backend(spec(backend="trl", hyper=Hyper(quantize_4bit=False)), CUDA_ONLY)
        plain = Hyper(quantize_4bit=False, optimizer="adamw_torch")
        assert pick_backend(spec(backend="trl", hyper=plain), CUDA_ONLY)[0] == "trl"

    def test_the_cpu_set_replaces_what_it_cannot_do_rather_than_refusing(self) -> None:
        """4-bit and the 8-bit optimiser on the CPU are the CPU set's named replacements."""
        assert pick_backend(spec(), CPU)[0] == "trl"


class TestSetting:
    def test_a_spec_written_before_the_setting_trains_as_auto(self) -> None:
        old = spec().model_dump(exclude={"backend"})
        assert "backend" not in old
        assert RunSpec.model_validate(old).backend == "auto"

    def test_the_config_key_takes_the_values_a_spec_records(self) -> None:
        annotation = TrainingConfig.model_fields["backend"].annotation
        assert get_args(annotation) == get_args(BackendSetting)
        assert TrainingConfig().backend == "auto"


class TestDoctor:
    @pytest.mark.parametrize(
        ("setting", "status", "detail"),
        [
            ("auto", "ok", '[training] backend = "auto" trains on trl'),
            ("trl", "ok", '[training] backend = "trl" trains on trl'),
            ("unsloth", "fail", '[training] backend = "unsloth" needs CUDA'),
        ],
    )
    def test_the_gpu_set_line_names_the_set_and_what_the_setting_trains_on(
        self, tmp_path: Path, setting: str, status: str, detail: str
    ) -> None:
        """Named as the worker names it; a fail where the worker would refuse every run."""
        tmp_path.joinpath("cra.toml").write_text(f'[training]\nbackend = "{setting}"\n')
        checks = {check.name: check for check in run_checks(Workspace.open(tmp_path))}
        line = checks["gpu set"]
        assert line.status == status
        assert line.detail.startswith(TrainingSet.detect().describe() + ": ")
        assert detail in line.detail
