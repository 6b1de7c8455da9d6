"""Training runs: the spec and its overrides, the guardrails, what `start_run` refuses,
registering an adapter as a candidate version, and reconciling runs whose worker ended.

Every test works in a real workspace holding a dataset curated from reviewed items. The jobs
are real processes; the worker itself runs only in the end-to-end test at the bottom.
"""

import json
import random
import shutil
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pilot_wait import wait_for
from races import end_jobs, last_job_id, race
from training_fixtures import wait_for_run

from app.cli import cli
from app.cli_train import train
from engine.adapters.activation import version_by_id
from engine.core.hashing import sha256_file
from engine.core.jobs import JobRow, job_alive, latest_job, spawn_job, terminate_job
from engine.core.stages import NotALoraStage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.training.contract import BACKEND_FILE, BackendChoice, RunResult, RunSpec, StepRecord
from engine.training.guardrails import (
    GuardrailError,
    check_guardrails,
    check_inference_servers,
    check_window,
)
from engine.training.registry import (
    RegistryError,
    register_candidate,
    resolve_base,
)
from engine.training.run_view import TrainingRun, recent_runs
from engine.training.runs import (
    JOB_KIND,
    build_spec,
    reconcile_runs,
    resume_run,
    run_row,
    start_run,
    stop_run,
)
from engine.training.start_options import TrainingRunError, build_hyper, parse_settings
from engine.training_data.curate import curate
from engine.training_data.dataset_files import UnknownDataset
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import decide, draw_sample
from engine.training_data.store import add_items

if train.name not in cli.commands:
    cli.add_command(train)

BASE = "models/reasoning-base"


def _pair(n: int) -> TrainingItem:
    sft = _item(n)
    return sft.model_copy(
        update={
            "stage": "planning_dpo",
            "kind": "preference",
            "origin": "harness_plan",
            "source": "harness",
            "rejected": [Message(role="assistant", content=f"a plan that misses part {n}")],
        }
    )


def _item(n: int) -> TrainingItem:
    rng = random.Random(n)
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe") for b in range(40)]
    domain = f"dom{n % 6}"
    return TrainingItem(
        stage="scope",
        kind="sft",
        source="synthetic",
        origin="commit",
        repo=f"{domain}-repo",
        domain=domain,
        task_key=f"task-{n}",
        task_date=f"2025-01-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
        prompt=[
            Message(role="system", content="You judge the files a task concerns."),
            Message(role="user", content=" ".join(rng.choice(words) for _ in range(30))),
        ],
        chosen=[Message(role="assistant", content=" ".join(rng.choice(words) for _ in range(20)))],
    )


def _write_config(root: Path, **training: Any) -> None:
    lines = ["[training]"] + [f"{key} = {json.dumps(value)}" for key, value in training.items()]
    lines += ["[training.base_models]", f'reasoning = "{BASE}"']
    (root / "cra.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding the curated datasets scope-d1 (sft) and planning_dpo-d1 (pairs) and a
    stand-in base model folder."""
    root = tmp_path_factory.mktemp("template") / "ws"
    ws = Workspace.open(root)
    add_items(ws.db, [_item(n) for n in range(40)])
    round_id = draw_sample(ws, "scope", 15, seed=3)
    for position in range(1, 16):
        decide(ws, round_id, position, "accept")
    report = curate(ws, stage="scope")
    assert [done.id for done in report.curated] == ["scope-d1"], report.blocked
    add_items(ws.db, [_pair(n) for n in range(40)])
    round_id = draw_sample(ws, "planning_dpo", 15, seed=3)
    for position in range(1, 16):
        decide(ws, round_id, position, "accept")
    report = curate(ws, stage="planning_dpo")
    assert [done.id for done in report.curated] == ["planning_dpo-d1"], report.blocked
    (root / BASE).mkdir(parents=True)
    (root / BASE / "config.json").write_text('{"model_type": "qwen2"}\n', encoding="utf-8")
    ws.db.conn.close()
    return root


def _open(tmp_path: Path, template: Path, **training: Any) -> Workspace:
    root = tmp_path / "ws"
    shutil.copytree(template, root)
    _write_config(root, **training)
    return Workspace.open(root)


@pytest.fixture
def ws(tmp_path: Path, _template: Path) -> Workspace:
    return _open(tmp_path, _template)


def _insert_run(ws: Workspace, spec: RunSpec) -> tuple[int, Path]:
    """A run row and folder as `start_run` leaves them, without starting a worker."""
    run_id = (
        ws.db["training_runs"]
        .insert(
            {
                "stage": spec.stage,
                "base_model": spec.base_model,
                "method": spec.method,
                "dataset_id": spec.dataset_id,
                "spec_json": spec.model_dump_json(),
                "status": "running",
                "reason": "",
                "run_dir": "pending",
                "created_at": "2025-01-01T00:00:00Z",
            }
        )
        .last_pk
    )
    ws.db["training_runs"].update(run_id, {"run_dir": f"training/{run_id}"})
    run_dir = ws.root / "training" / str(run_id)
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(spec.model_dump_json(), encoding="utf-8")
    return run_id, run_dir


def _finished(run_dir: Path, ws: Workspace, *, status: str = "done", steps: int = 3) -> None:
    """What a worker leaves when it finished: adapter/, metrics.jsonl and result.json."""
    adapter = run_dir / "adapter"
    (adapter / "nested").mkdir(parents=True)
    config = {"base_model_name_or_path": str(ws.root / BASE), "r": 16, "peft_type": "LORA"}
    (adapter / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    (adapter / "adapter_model.safetensors").write_bytes(random.Random(steps).randbytes(4096))
    (adapter / "nested" / "tokenizer.json").write_text("{}", encoding="utf-8")
    records = [
        StepRecord(step=step, max_steps=steps, loss=2.0 / step, elapsed_s=step)
        for step in range(1, steps + 1)
    ]
    text = "".join(record.model_dump_json() + "\n" for record in records)
    (run_dir / "metrics.jsonl").write_text(text + '{"step": 9, "max_st', encoding="utf-8")
    result = RunResult(
        status=status,
        backend="trl",
        steps=steps,
        max_steps=steps,
        final_loss=2.0 / steps,
        train_runtime_s=1.5,
        effective={"optimizer": "adamw_torch"},
        adapter_dir="adapter" if status == "done" else None,
    )
    (run_dir / "result.json").write_text(result.model_dump_json(), encoding="utf-8")


def _job(ws: Workspace, run_id: int, code: str) -> JobRow:
    spawn_job(ws, JOB_KIND, run_id, [sys.executable, "-c", code])
    job = latest_job(ws, JOB_KIND, run_id)
    assert job is not None
    return job


def _wait_gone(job: JobRow) -> None:
    wait_for(lambda: not job_alive(job), f"job {job.id} (pid {job.pid}) to exit")


# -- the spec and its overrides ------------------------------------------------------------


def test_settings_parse_as_json_values_or_text() -> None:
    assert parse_settings(["max_steps=3", "learning_rate=1e-4", "scheduler=linear"]) == {
        "max_steps": 3,
        "learning_rate": 1e-4,
        "scheduler": "linear",
    }
    assert parse_settings(['target_modules=["q_proj","v_proj"]', "alpha=null"]) == {
        "target_modules": ["q_proj", "v_proj"],
        "alpha": None,
    }
    with pytest.raises(TrainingRunError, match="expected key=value"):
        parse_settings(["max_steps"])
    with pytest.raises(TrainingRunError, match="max_steps: given twice"):
        parse_settings(["max_steps=3", "max_steps=4"])


def test_hyper_takes_the_stage_rank_and_checks_every_override() -> None:
    assert build_hyper("scope", {}).rank == 16
    code = build_hyper("execute_code", {})
    assert (code.rank, code.lora_alpha, code.learning_rate, code.optimizer) == (
        32,
        64,
        2e-4,
        "adamw_8bit",
    )
    assert build_hyper("scope", {"rank": 8, "max_steps": 3}).lora_alpha == 16
    with pytest.raises(TrainingRunError, match="unknown setting max_stepz; settings are rank,"):
        build_hyper("scope", {"max_stepz": 3})
    with pytest.raises(TrainingRunError, match="key max_steps: .*greater than or equal to 1"):
        build_hyper("scope", {"max_steps": 0})
    with pytest.raises(TrainingRunError, match="key scheduler: .*'cosine', 'linear'"):
        build_hyper("scope", {"scheduler": "exponential"})


def test_the_spec_names_the_dataset_the_frozen_base_and_the_method(ws: Workspace) -> None:
    spec = build_spec(ws, "scope-d1", "scope", overrides={"max_steps": 5})
    assert (spec.method, spec.base_model, spec.base_model_path) == ("sft", "reasoning", BASE)
    assert spec.dataset_path == "datasets/scope-d1"
    assert spec.dataset_sha256 == sha256_file(ws.datasets_dir / "scope-d1" / "manifest.json")
    assert spec.hyper.max_steps == 5 and spec.hyper.rank == 16
    assert spec.backend == "auto"


def test_the_spec_records_the_configured_training_backend(tmp_path: Path, _template: Path) -> None:
    """The run keeps the stack it was started for, whatever the config says by its resume."""
    ws = _open(tmp_path, _template, backend="trl")
    assert build_spec(ws, "scope-d1", "scope").backend == "trl"


def test_a_stages_configured_settings_sit_between_the_defaults_and_a_runs_own(
    tmp_path: Path, _template: Path
) -> None:
    """`[training.hyper.scope]` applies to scope's runs only, a run's `--set` wins over it, and
    a bad setting there is refused when a run starts, naming the table and the rule."""
    ws = _open(tmp_path, _template)
    config = (ws.root / "cra.toml").read_text(encoding="utf-8")
    table = "[training.hyper.scope]\nlearning_rate = 0.01\nmax_steps = 60\n"
    (ws.root / "cra.toml").write_text(config + table, encoding="utf-8")
    ws = Workspace.open(ws.root)
    spec = build_spec(ws, "scope-d1", "scope")
    assert (spec.hyper.learning_rate, spec.hyper.max_steps, spec.hyper.rank) == (0.01, 60, 16)
    shown = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "train", "settings", "--stage", "scope"]
    )
    assert shown.exit_code == 0, shown.output
    lines = [line.split() for line in shown.output.splitlines()]
    assert lines[0] == ["rank=16", "#", "default"]
    assert lines[1] == ["alpha=null", "#", "default:", "2", "×", "rank"]
    assert ["learning_rate=0.01", "#", "cra.toml", "[training.hyper.scope]"] in lines
    assert ["max_steps=60", "#", "cra.toml", "[training.hyper.scope]"] in lines
    shown_settings = [line[0] for line in lines]  # each one word, as a shell passes it
    from_cli = build_spec(ws, "scope-d1", "scope", overrides=parse_settings(shown_settings))
    assert from_cli.hyper == spec.hyper  # what it prints, given back as --set, changes nothing
    spec = build_spec(ws, "scope-d1", "scope", overrides={"learning_rate": 1e-12})
    assert (spec.hyper.learning_rate, spec.hyper.max_steps) == (1e-12, 60)
    other = build_spec(ws, "planning_dpo-d1", "planning_dpo")
    assert (other.hyper.learning_rate, other.hyper.max_steps) == (2e-4, None)

    (ws.root / "cra.toml").write_text(
        config + "[training.hyper.scope]\nmax_stepz = 3\n", encoding="utf-8"
    )
    with pytest.raises(
        TrainingRunError, match=r"^\[training.hyper.scope\] in cra.toml: unknown setting max_stepz"
    ):
        start_run(Workspace.open(ws.root), "scope-d1", "scope")
    (ws.root / "cra.toml").write_text(
        config + "[training.hyper.meta_plan]\nmax_steps = 3\n", encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "train", "status"])
    assert result.exit_code == 1
    assert "training.hyper.meta_plan" in result.output and "Traceback" not in result.output
    assert ws.db["training_runs"].count == 0


# -- guardrails ----------------------------------------------------------------------------


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_a_listening_inference_server_blocks_training(tmp_path: Path, _template: Path) -> None:
    """Every served base's server holds the GPU while it answers (each on its own port from
    `[serving] base_url`), and so does another server at `[training] inference_url`."""
    with _listening() as reasoning, _listening() as other:
        port = reasoning.getsockname()[1]
        url = f"http://127.0.0.1:{other.getsockname()[1]}/v1"
        ws = _open(tmp_path, _template)
        config = ws.root / "cra.toml"
        config.write_text(
            config.read_text()
            + f'[serving]\nbase_url = "http://127.0.0.1:{port}"\n'
            + '[serving.bases]\nreasoning = "models/other"\ncoding = "models/other"\n'
        )
        ws = Workspace.open(ws.root)
        said = f"base reasoning's server answers at 127.0.0.1:{port} and holds the GPU"
        with pytest.raises(GuardrailError, match=said):
            check_inference_servers(ws)
        result = CliRunner().invoke(
            cli,
            [
                "--workspace",
                str(ws.root),
                "train",
                "start",
                "--dataset",
                "scope-d1",
                "--stage",
                "scope",
            ],
        )
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert said in result.output and "`cra serve --hold`" in result.output
        assert "or pass --force" in result.output
        reasoning.close()
        check_inference_servers(ws)
        config.write_text(
            config.read_text().replace("[training]\n", f'[training]\ninference_url = "{url}"\n')
        )
        ws = Workspace.open(ws.root)
        with pytest.raises(
            GuardrailError,
            match=f"the inference server at \\[training\\] inference_url answers at "
            f"127.0.0.1:{other.getsockname()[1]}",
        ):
            start_run(ws, "scope-d1", "scope")
    assert ws.db["training_runs"].count == 0
    check_inference_servers(ws)


@pytest.mark.parametrize(
    ("window", "now", "opens"),
    [
        ("22:00-06:00", "12:00", "22:00 (in 10 h 0 min)"),
        ("22:00-06:00", "06:00", "22:00 (in 16 h 0 min)"),
        ("09:00-17:00", "08:30", "09:00 (in 0 h 30 min)"),
        ("09:00-17:00", "17:00", "09:00 (in 16 h 0 min)"),
    ],
)
def test_outside_the_window_training_waits(window: str, now: str, opens: str) -> None:
    clock = datetime.fromisoformat(f"2025-03-04T{now}:00")
    with pytest.raises(GuardrailError) as refused:
        check_window(window, clock)
    assert f"outside the training window {window} ([training] window" in str(refused.value)
    assert f"it opens at {opens}" in str(refused.value)


@pytest.mark.parametrize(
    ("window", "now"),
    [("22:00-06:00", "23:30"), ("22:00-06:00", "05:59"), ("09:00-17:00", "09:00")],
)
def test_inside_the_window_training_may_start(window: str, now: str) -> None:
    check_window(window, datetime.fromisoformat(f"2025-03-04T{now}:00"))
    check_window(None, datetime.fromisoformat(f"2025-03-04T{now}:00"))


def test_a_window_that_is_not_a_clock_range_is_refused() -> None:
    with pytest.raises(GuardrailError, match="start equals end"):
        check_window("08:00-08:00", datetime(2025, 1, 1, 9))
    with pytest.raises(GuardrailError, match="not HH:MM-HH:MM"):
        check_window("25:00-06:00", datetime(2025, 1, 1, 9))


def test_a_second_run_waits_for_the_one_holding_the_gpu(ws: Workspace) -> None:
    run_id, _ = _insert_run(ws, build_spec(ws, "scope-d1", "scope"))
    job = _job(ws, run_id, "import time; time.sleep(60)")
    try:
        with pytest.raises(GuardrailError, match=f"training run {run_id} is running"):
            start_run(ws, "scope-d1", "scope")
        check_guardrails(ws, datetime.now(), except_run=run_id)
    finally:
        terminate_job(job)
        _wait_gone(job)


# -- what start refuses --------------------------------------------------------------------


def test_start_refuses_a_missing_dataset_and_a_mismatched_stage_or_method(ws: Workspace) -> None:
    with pytest.raises(UnknownDataset, match="no dataset has id 'scope-d9'"):
        start_run(ws, "scope-d9", "scope")
    with pytest.raises(TrainingRunError, match="scope data; it cannot train the precision"):
        start_run(ws, "scope-d1", "precision")
    with pytest.raises(TrainingRunError, match="holds sft rows, which train with sft, not dpo"):
        start_run(ws, "scope-d1", "scope", method="dpo")
    with pytest.raises(NotALoraStage, match="unknown stage 'scoop'; the LoRA stages are"):
        start_run(ws, "scope-d1", "scoop")
    assert ws.db["training_runs"].count == 0
    assert not (ws.root / "training").exists()


def test_a_planning_stage_trains_no_lora_adapter(ws: Workspace) -> None:
    """meta/step/test planning are the base fine-tune's (LoRA Training Strategy §2.6): a run for one
    is refused, naming the rule, by the engine and by `cra train start`; no run is recorded."""
    with pytest.raises(NotALoraStage, match="meta_plan has no LoRA adapter to train: planning"):
        start_run(ws, "scope-d1", "meta_plan")
    result = CliRunner().invoke(
        cli,
        ["--workspace", str(ws.root), "train", "start", "--dataset", "scope-d1"]
        + ["--stage", "step_plan"],
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: step_plan has no LoRA adapter to train: planning")
    assert ws.db["training_runs"].count == 0


def test_start_refuses_an_unset_missing_or_derived_base(ws: Workspace) -> None:
    (ws.root / "cra.toml").write_text("", encoding="utf-8")
    with pytest.raises(TrainingRunError, match=r"\[training\] base_models.reasoning is not set"):
        start_run(Workspace.open(ws.root), "scope-d1", "scope")

    def refused(base: Path, match: str) -> None:
        text = f'[training.base_models]\nreasoning = "{base}"\n'
        (ws.root / "cra.toml").write_text(text, encoding="utf-8")
        with pytest.raises(TrainingRunError, match=match):
            start_run(Workspace.open(ws.root), "scope-d1", "scope")

    refused(ws.root / "models" / "nowhere", r"base_models.reasoning = .*nowhere is not a folder")
    merged = ws.root / "models" / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}", encoding="utf-8")
    (merged / "adapter_config.json").write_text("{}", encoding="utf-8")
    refused(merged, "holds adapter_config.json.*a base is a frozen model")
    under = ws.adapters_dir / "scope" / "v1"
    under.mkdir(parents=True)
    (under / "config.json").write_text("{}", encoding="utf-8")
    refused(under, "lies under adapters/; a base is a frozen model")
    assert ws.db["training_runs"].count == 0


# -- registering an adapter ----------------------------------------------------------------


def test_a_finished_run_registers_as_the_next_candidate_version(
    ws: Workspace, tmp_path: Path
) -> None:
    spec = build_spec(ws, "scope-d1", "scope")
    run_id, run_dir = _insert_run(ws, spec)
    _finished(run_dir, ws)
    adapter_id = register_candidate(ws, run_id)
    row = version_by_id(ws, adapter_id)
    assert (row.name, row.version, row.status, row.path) == (
        "scope-v1",
        1,
        "candidate",
        "adapters/scope/v1",
    )
    assert (row.base_model_path, row.rank, row.run_id) == (BASE, 16, run_id)
    assert row.dataset_sha256 == spec.dataset_sha256 and row.dataset_id == "scope-d1"
    metrics = row.metrics
    assert metrics is not None
    assert metrics["result"]["final_loss"] == pytest.approx(2.0 / 3)
    assert metrics["last_step"]["step"] == 3
    target = ws.root / row.path
    files = row.files
    assert files is not None
    assert sorted(files) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "nested/tokenizer.json",
    ]
    assert all(sha256_file(target / name) == digest for name, digest in files.items())
    assert (target / "adapter_model.safetensors").read_bytes() == (
        run_dir / "adapter" / "adapter_model.safetensors"
    ).read_bytes()
    config = json.loads((target / "adapter_config.json").read_text(encoding="utf-8"))
    assert config == {"base_model_name_or_path": BASE, "r": 16, "peft_type": "LORA"}
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]
    assert run_row(ws, run_id).adapter_name == "scope-v1"

    assert register_candidate(ws, run_id) == adapter_id
    assert sorted(p.name for p in target.parent.iterdir()) == ["v1"]

    (target.parent / "v2").mkdir()
    second, second_dir = _insert_run(ws, spec)
    _finished(second_dir, ws, steps=4)
    assert version_by_id(ws, register_candidate(ws, second)).name == "scope-v3"

    moved = tmp_path / "elsewhere" / "ws"
    shutil.copytree(ws.root, moved)
    assert resolve_base(Workspace.open(moved), row) == moved / BASE
    assert (resolve_base(Workspace.open(moved), row) / "config.json").is_file()


def test_a_stopped_run_has_no_adapter_to_register(ws: Workspace) -> None:
    run_id, run_dir = _insert_run(ws, build_spec(ws, "scope-d1", "scope"))
    with pytest.raises(RegistryError, match="no finished adapter to register .no result.json"):
        register_candidate(ws, run_id)
    _finished(run_dir, ws, status="stopped")
    with pytest.raises(RegistryError, match="result.json says stopped"):
        register_candidate(ws, run_id)
    assert ws.db["adapter_versions"].count == 0


# -- reconciling ---------------------------------------------------------------------------


def test_a_worker_that_dies_without_a_result_fails_the_run_with_its_last_lines(
    ws: Workspace,
) -> None:
    run_id, _ = _insert_run(ws, build_spec(ws, "scope-d1", "scope"))
    code = (
        "import sys\n"
        f"with open('training/{run_id}/train.log', 'a') as log:\n"
        "    for n in range(1, 31): print(f'line {n}', file=log)\n"
        "sys.exit('boom: out of memory')"
    )
    job = _job(ws, run_id, code)
    _wait_gone(job)
    assert reconcile_runs(ws) == [run_id]
    run = run_row(ws, run_id)
    assert run.status == "failed" and run.finished_at
    reason = run.reason
    assert reason.startswith("the worker exited without result.json; what it said last:\n")
    assert f"-- training/{run_id}/train.log:\n" in reason and "line 11\n" in reason
    assert "line 30" in reason and "line 10\n" not in reason
    assert f"-- {job.log_path}:\nboom: out of memory" in reason
    assert ws.db["jobs"].get(job.id)["status"] == "failed"
    assert reconcile_runs(ws) == []


def test_progress_stop_and_a_stopped_worker(ws: Workspace) -> None:
    run_id, run_dir = _insert_run(ws, build_spec(ws, "scope-d1", "scope"))
    job = _job(ws, run_id, "import time; time.sleep(60)")
    try:
        record = StepRecord(step=7, max_steps=20, loss=1.25, elapsed_s=3)
        (run_dir / "metrics.jsonl").write_text(record.model_dump_json() + "\n", encoding="utf-8")
        assert reconcile_runs(ws) == []
        run = run_row(ws, run_id)
        assert (run.status, run.step, run.max_steps, run.loss) == (
            "running",
            7,
            20,
            1.25,
        )
        with pytest.raises(TrainingRunError, match="only a stopped or failed run resumes"):
            resume_run(ws, run_id)
        stop_run(ws, run_id)
        assert (run_dir / "STOP").exists() and run_row(ws, run_id).status == "stopping"
        with pytest.raises(TrainingRunError, match="is stopping; only a running run stops"):
            stop_run(ws, run_id)
    finally:
        terminate_job(job)
        _wait_gone(job)
    _finished(run_dir, ws, status="stopped", steps=8)
    assert reconcile_runs(ws) == [run_id]
    run = run_row(ws, run_id)
    assert (run.status, run.reason, run.backend) == (
        "stopped",
        "stopped at step 8 of 8",
        "trl",
    )
    assert ws.db["jobs"].get(job.id)["status"] == "exited"


def test_a_running_run_names_its_backend_as_soon_as_the_worker_picks_it(ws: Workspace) -> None:
    """The backend the worker picked (backend.json, written before it loads the model) is the
    run's at the next reconcile, while the worker still runs, not only once it has ended."""
    run_id, run_dir = _insert_run(ws, build_spec(ws, "scope-d1", "scope"))
    job = _job(ws, run_id, "import time; time.sleep(60)")
    try:
        assert reconcile_runs(ws) == []
        assert run_row(ws, run_id).backend is None
        choice = BackendChoice(backend="trl", why="no CUDA")
        (run_dir / BACKEND_FILE).write_text(choice.model_dump_json(), encoding="utf-8")
        assert reconcile_runs(ws) == []
        run = run_row(ws, run_id)
        assert (run.status, run.backend) == ("running", "trl")
        (run_dir / BACKEND_FILE).write_text('{"backend": "cuda"}', encoding="utf-8")
        with pytest.raises(RegistryError, match="backend.json"):
            reconcile_runs(ws)
    finally:
        terminate_job(job)
        _wait_gone(job)


def test_a_run_names_the_version_it_registered_and_its_gate_state(ws: Workspace) -> None:
    """A run's row carries the version it registered, that version's status and its newest
    gate decision, as the CLI and the console list them."""
    run_id, run_dir = _insert_run(ws, build_spec(ws, "scope-d1", "scope"))
    _finished(run_dir, ws)
    _wait_gone(_job(ws, run_id, "pass"))
    assert reconcile_runs(ws) == [run_id]
    run = run_row(ws, run_id)
    assert (run.adapter_name, run.adapter_status, run.gate) == ("scope-v1", "candidate", None)
    for decision in ("underpowered", "pass"):
        ws.db["gate_decisions"].insert(
            {
                "adapter_id": run.adapter_id,
                "stage": "scope",
                "baseline": "base",
                "decision": decision,
                "reasons_json": "[]",
                "at": utc_now(),
            }
        )
    (listed,) = recent_runs(ws.db)
    assert (listed.adapter_name, listed.adapter_status, listed.gate) == (
        "scope-v1",
        "candidate",
        "pass",
    )
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "train", "show", str(run_id)])
    assert "  adapter:  scope-v1 (candidate, gate pass)" in result.output


def test_a_run_whose_adapter_did_not_register_registers_on_resume(ws: Workspace) -> None:
    run_id, run_dir = _insert_run(ws, build_spec(ws, "scope-d1", "scope"))
    _finished(run_dir, ws)
    shutil.move(run_dir / "adapter", run_dir / "adapter.aside")
    _wait_gone(_job(ws, run_id, "pass"))
    assert reconcile_runs(ws) == [run_id]
    run = run_row(ws, run_id)
    assert run.status == "failed"
    assert "trained, but the adapter could not be registered" in run.reason
    shutil.move(run_dir / "adapter.aside", run_dir / "adapter")
    assert resume_run(ws, run_id) is None
    run = run_row(ws, run_id)
    assert (run.status, run.adapter_name, run.step) == ("done", "scope-v1", 3)


def test_cli_status_and_show(ws: Workspace) -> None:
    run_id, run_dir = _insert_run(ws, build_spec(ws, "scope-d1", "scope"))
    _finished(run_dir, ws)
    _wait_gone(_job(ws, run_id, "pass"))
    runner = CliRunner()
    status = runner.invoke(cli, ["--workspace", str(ws.root), "train", "status"])
    assert status.exit_code == 0, status.output
    assert f"{run_id:>4}  scope" in status.output
    assert "done" in status.output and "step 3/3" in status.output
    assert "scope-v1" in status.output
    show = runner.invoke(cli, ["--workspace", str(ws.root), "train", "show", str(run_id)])
    assert show.exit_code == 0, show.output
    assert f"base:     reasoning at {BASE}" in show.output
    assert "replaced: optimizer: adamw_torch" in show.output
    assert "adapter:  scope-v1" in show.output
    missing = runner.invoke(cli, ["--workspace", str(ws.root), "train", "stop", "99"])
    assert missing.exit_code == 1
    assert "error: there is no training run 99" in missing.output
    start = ["--workspace", str(ws.root), "train", "start", "--dataset", "scope-d1"]
    bad = runner.invoke(cli, [*start, "--stage", "scope", "--set", "max_steps=0"])
    assert bad.exit_code == 1
    assert "error: setting: key max_steps: Input should be greater than or equal to 1" in bad.output
    assert ws.db["training_runs"].count == 1


# -- several processes at once -------------------------------------------------------------


def _start(ws: Workspace, round_no: int, seen: object) -> str:
    return f"run {start_run(ws, 'scope-d1', 'scope')}"


def _resume(ws: Workspace, round_no: int, seen: object) -> str:
    return f"job {resume_run(ws, 1)}"


def _poll(ws: Workspace, round_no: int, seen: object) -> str:
    """`cra train status` (or the Training pane's poll) over and over while a run starts."""
    deadline = time.monotonic() + 0.4
    while time.monotonic() < deadline:
        if ended := reconcile_runs(ws):
            return f"declared ended: runs {ended}"
        time.sleep(0.002)
    return "ok"


def _end_the_round(ws: Workspace, after_job: int) -> tuple[list[JobRow], list[int]]:
    """Kill the round's workers (they would go on to train) and settle their runs as failed:
    returns the workers' job rows and the runs settled."""
    jobs = end_jobs(ws, JOB_KIND, after_job)
    return jobs, reconcile_runs(ws)


@pytest.mark.slow
def test_two_resumes_of_one_run_at_once_start_one_worker(ws: Workspace) -> None:
    """Two processes resume the same failed run at the same moment, round after round: each
    time exactly one worker starts on its folder, and the other resume is refused."""
    run_id, _ = _insert_run(ws, build_spec(ws, "scope-d1", "scope"))
    assert run_id == 1
    _set_status(ws, run_id, "failed")
    mark = [last_job_id(ws)]

    def settle(round_no: int, outcomes: list[str]) -> None:
        jobs, settled = _end_the_round(ws, mark[0])
        mark[0] = last_job_id(ws)
        started = [o for o in outcomes if o.startswith("job ")]
        assert len(jobs) == 1 and len(started) == 1, (round_no, outcomes, jobs)
        [refused] = [o for o in outcomes if o not in started]
        assert "run 1 is running; only a stopped or failed run resumes" in refused, refused
        assert settled == [run_id] and run_row(ws, run_id).status == "failed"

    race(ws.root, [(None, _resume), (None, _resume)], settle)


@pytest.mark.slow
def test_two_starts_at_once_start_one_training_run(ws: Workspace) -> None:
    """Two processes start a training run at the same moment, round after round: one run
    starts, the other start is refused because that run holds the GPU."""
    mark = [last_job_id(ws)]

    def settle(round_no: int, outcomes: list[str]) -> None:
        jobs, settled = _end_the_round(ws, mark[0])
        mark[0] = last_job_id(ws)
        started = [o for o in outcomes if o.startswith("run ")]
        assert len(jobs) == 1 and len(started) == 1, (round_no, outcomes, jobs)
        [refused] = [o for o in outcomes if o not in started]
        run_id = int(started[0].split()[1])
        assert f"training run {run_id} is running and holds the GPU" in refused, refused
        assert settled == [run_id]

    race(ws.root, [(None, _start), (None, _start)], settle)


@pytest.mark.slow
def test_a_status_poll_during_a_start_never_fails_the_run(ws: Workspace) -> None:
    """While one process starts a training run, another reconciles runs as fast as it can:
    the run being started is never declared ended, so no second worker can take its place."""
    mark = [last_job_id(ws)]

    def settle(round_no: int, outcomes: list[str]) -> None:
        jobs, settled = _end_the_round(ws, mark[0])
        mark[0] = last_job_id(ws)
        assert outcomes[1] == "ok", (round_no, outcomes)
        assert outcomes[0].startswith("run ") and len(jobs) == 1, (round_no, outcomes, jobs)
        assert settled == [int(outcomes[0].split()[1])]

    race(ws.root, [(None, _start), (None, _poll)], settle)


def _set_status(ws: Workspace, run_id: int, status: str) -> None:
    ws.db["training_runs"].update(run_id, {"status": status})


# -- end to end, with the real worker ------------------------------------------------------


def _wait_for(ws: Workspace, run_id: int, status: str) -> TrainingRun:
    """Reconcile until the run reaches `status`; fail with its log if it ends otherwise."""
    return wait_for_run(ws, run_id, status, ("running", "stopping"))


@pytest.mark.slow
def test_a_run_stops_resumes_and_registers_its_adapter(tmp_path: Path, _template: Path) -> None:
    from engine.training.adapter_io import load_with_adapter
    from engine.training.tiny_model import build_tiny_model

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        ws = _open(tmp_path, _template, inference_url=f"http://127.0.0.1:{server.getsockname()[1]}")
        shutil.rmtree(ws.root / BASE)
        build_tiny_model(ws.root / BASE)
        settings = ["max_steps=3", "save_steps=1", "gradient_accumulation=1", "max_length=256"]
        run_id = start_run(ws, "scope-d1", "scope", overrides=parse_settings(settings), force=True)
    stop_run(ws, run_id)
    stopped = _wait_for(ws, run_id, "stopped")
    assert 1 <= stopped.step < 3 and stopped.backend == "trl"
    assert ws.db["adapter_versions"].count == 0

    assert resume_run(ws, run_id, force=True) is not None
    done = _wait_for(ws, run_id, "done")
    log = (ws.root / done.run_dir / "train.log").read_text(encoding="utf-8")
    assert f"resuming from checkpoints/checkpoint-{stopped.step} at step" in log
    assert (done.step, done.max_steps, done.adapter_name) == (3, 3, "scope-v1")
    assert done.loss is not None
    spec = json.loads((ws.root / done.run_dir / "spec.json").read_text(encoding="utf-8"))
    assert spec["hyper"]["max_steps"] == 3 and spec["base_model_path"] == BASE

    row = version_by_id(ws, done.adapter_id)
    assert (row.path, row.status, row.base_model_path) == (
        "adapters/scope/v1",
        "candidate",
        BASE,
    )
    adapter = ws.root / row.path
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == BASE
    assert row.files is not None
    assert set(row.files) == {
        path.relative_to(adapter).as_posix() for path in adapter.rglob("*") if path.is_file()
    }
    model, _ = load_with_adapter(resolve_base(ws, row), adapter)
    assert model.peft_config["default"].r == 16


@pytest.mark.slow
def test_a_dpo_run_through_the_job_system_registers_its_adapter(
    tmp_path: Path, _template: Path
) -> None:
    from engine.training.tiny_model import build_tiny_model

    ws = _open(tmp_path, _template)
    shutil.rmtree(ws.root / BASE)
    build_tiny_model(ws.root / BASE)
    settings = ["max_steps=2", "gradient_accumulation=1", "max_length=256"]
    run_id = start_run(ws, "planning_dpo-d1", "planning_dpo", overrides=parse_settings(settings))
    done = _wait_for(ws, run_id, "done")
    assert (done.method, done.step, done.adapter_name) == ("dpo", 2, "planning_dpo-v1")
    lines = (ws.root / done.run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["reward_margin"] is not None and r["reward_accuracy"] is not None for r in records)
    assert (ws.root / "adapters/planning_dpo/v1/adapter_config.json").is_file()
