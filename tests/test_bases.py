"""Base model checkpoints: `{role}-base-v{N}` with their files' hashes, the base each adapter was
trained on, and what a base change does: the old base's adapters never serve again (resolve,
export, serve commands, promotion, rollback, eval runs refuse or fall back and say why), the
training plan lists them, and nothing is deleted.

Model folders are real files hashed here; adapters are rows over real hashed folders
(`eval_fixtures.add_version`); the CLI runs through click; the server is `fake_vllm`.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from eval_fixtures import add_version, pass_gate
from fake_vllm import FakeVllm, write_base_tokenizer

from app.cli import cli
from engine.adapters.activation import (
    ActivationError,
    export_metadata,
    promote,
    resolve,
    resolve_with_reason,
    rollback,
    version_row,
)
from engine.bases.registry import (
    SERVING_KEY,
    TRAINING_KEY,
    BaseChangedError,
    BaseRegistryError,
    current_base,
    ensure_base,
    hash_folder,
    list_bases,
    register_base,
    stranded_adapters,
    verify_base,
)
from engine.core.workspace import Workspace
from engine.evaluation.runs import EvalRunError, start_eval
from engine.serving.command import serve_commands
from engine.serving.vllm_client import ServingError, VllmClient, load_version, rank_limit
from engine.training.runs import TrainingRunError, frozen_base
from engine.training_data.train_plan import build_plan

STAGE = "scope"


def _model(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (folder / "model.safetensors").write_bytes(weights)
    write_base_tokenizer(folder)
    return folder


def _configure(root: Path, folder: str, port: int = 8000) -> None:
    (root / "cra.toml").write_text(
        f'[serving]\nbase_url = "http://127.0.0.1:{port}"\ntimeout_s = 5\n'
        f'[serving.bases]\nreasoning = "{folder}"\n'
        f'[training.base_models]\nreasoning = "{folder}"\n',
        encoding="utf-8",
    )


def _workspace(root: Path, port: int = 8000) -> Workspace:
    _model(root / "models/reasoning-32k-v1", b"weights one" * 100)
    _configure(root, "models/reasoning-32k-v1", port)
    return Workspace.open(root)


def _change_base(ws: Workspace, port: int = 8000) -> Workspace:
    """The operator puts a new base beside the old one and points the config at it."""
    _model(ws.root / "models/reasoning-32k-v2", b"weights two" * 100)
    _configure(ws.root, "models/reasoning-32k-v2", port)
    return Workspace.open(ws.root)


def _run(ws: Workspace, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), *args])
    return result.exit_code, result.stdout, result.stderr


# -- registering ---------------------------------------------------------------------------


def test_a_role_s_first_base_is_registered_on_first_use_with_its_files_hashes(
    tmp_path: Path,
) -> None:
    ws = _workspace(tmp_path / "ws")
    assert current_base(ws, "reasoning") is None
    base = ensure_base(ws, "reasoning", TRAINING_KEY, verify=True)
    assert (base.name, base.version, base.path) == (
        "reasoning-base-v1",
        1,
        "models/reasoning-32k-v1",
    )
    assert base.files == hash_folder(ws.root / "models/reasoning-32k-v1")
    assert sorted(base.files) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert base.size == sum(p.stat().st_size for p in (ws.root / base.path).iterdir())
    assert base.note == f"registered on first use ({TRAINING_KEY})"
    # Serving the same folder is the same version.
    assert ensure_base(ws, "reasoning", SERVING_KEY, verify=True).id == base.id
    assert len(list_bases(ws)) == 1


def test_registering_an_unchanged_base_again_changes_nothing(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    first = register_base(ws, "reasoning", note="migration day")
    again = register_base(ws, "reasoning")
    assert first.created and not again.created
    assert again.version.id == first.version.id
    code, out, _ = _run(ws, "bases", "register", "reasoning")
    assert code == 0
    assert "reasoning-base-v1 is already the reasoning base" in out


def test_a_changed_config_is_refused_until_the_new_base_is_registered(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    ensure_base(ws, "reasoning", TRAINING_KEY, verify=False)
    ws = _change_base(ws)
    with pytest.raises(TrainingRunError, match="cra bases register reasoning") as caught:
        frozen_base(ws, "reasoning")
    assert "reasoning-32k-v2" in str(caught.value) and "reasoning-base-v1" in str(caught.value)
    with pytest.raises(ServingError, match="cra bases register reasoning"):
        serve_commands(ws)
    with pytest.raises(BaseChangedError):
        ensure_base(ws, "reasoning", SERVING_KEY, verify=False)
    assert [b.name for b in list_bases(ws)] == ["reasoning-base-v1"]


def test_training_and_serving_naming_different_folders_is_refused(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    _model(ws.root / "models/other", b"other")
    text = (ws.root / "cra.toml").read_text()
    text = text.replace(
        '[serving.bases]\nreasoning = "models/reasoning-32k-v1"',
        '[serving.bases]\nreasoning = "models/other"',
    )
    (ws.root / "cra.toml").write_text(text)
    ws = Workspace.open(ws.root)
    with pytest.raises(BaseRegistryError, match="training and serving share"):
        register_base(ws, "reasoning")
    code, _, err = _run(ws, "bases", "register", "reasoning")
    assert code == 1
    assert "Traceback" not in err and "training and serving share" in err


def test_a_base_folder_must_be_a_frozen_model(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    (ws.root / "models/empty").mkdir()
    _configure(ws.root, "models/empty")
    with pytest.raises(BaseRegistryError, match="has no config.json; not a model"):
        register_base(Workspace.open(ws.root), "reasoning")
    merged = _model(ws.root / "models/merged", b"merged")
    (merged / "adapter_config.json").write_text("{}")
    _configure(ws.root, "models/merged")
    with pytest.raises(BaseRegistryError, match="holds adapter_config.json"):
        register_base(Workspace.open(ws.root), "reasoning")


def test_hashing_skips_the_download_cache_and_refuses_a_linked_folder(tmp_path: Path) -> None:
    folder = _model(tmp_path / "model", b"w")
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "download.lock").write_text("x")
    (folder / "sub").mkdir()
    (folder / "sub" / "extra.bin").write_bytes(b"e")
    assert sorted(hash_folder(folder)) == [
        "config.json",
        "model.safetensors",
        "sub/extra.bin",
        "tokenizer.json",
    ]
    (tmp_path / "elsewhere").mkdir()
    (folder / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BaseRegistryError, match="a linked folder inside a base model"):
        hash_folder(folder)


def test_changed_files_are_found_and_refuse_training_and_serving(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    base = register_base(ws, "reasoning").version
    (ws.root / base.path / "model.safetensors").write_bytes(b"tampered")
    (ws.root / base.path / "stray.bin").write_bytes(b"stray")
    assert verify_base(ws, base) == [
        "file model.safetensors does not match its registered sha256",
        "unregistered file stray.bin",
    ]
    with pytest.raises(TrainingRunError, match="model.safetensors does not match"):
        frozen_base(ws, "reasoning", verify=True)
    with pytest.raises(ServingError, match="not the registered ones"):
        serve_commands(ws)
    code, out, err = _run(ws, "bases", "verify")
    assert code == 1
    assert "reasoning-base-v1: file model.safetensors does not match" in out
    assert "files differ from the record" in err


# -- a base change strands the old base's adapters --------------------------------------------


def _stranded_workspace(tmp_path: Path, port: int = 8000) -> Workspace:
    """scope-v1 active and scope-v2 a candidate on reasoning-base-v1; then the base changes to
    reasoning-base-v2, and scope-v3 is trained on it."""
    ws = _workspace(tmp_path / "ws", port)
    register_base(ws, "reasoning")
    add_version(ws, STAGE, 1)
    add_version(ws, STAGE, 2)
    pass_gate(ws, "scope-v1", "base")
    promote(ws, "scope-v1", operator="ana", reason="first")
    ws = _change_base(ws, port)
    done = register_base(ws, "reasoning", note="context target 32k")
    assert done.created and done.replaced is not None
    assert done.replaced.name == "reasoning-base-v1"
    assert done.stranded == [("scope-v1", "active"), ("scope-v2", "candidate")]
    add_version(ws, STAGE, 3)
    return ws


def test_the_old_base_s_active_version_falls_back_to_the_bare_base(tmp_path: Path) -> None:
    ws = _stranded_workspace(tmp_path)
    model, reason = resolve_with_reason(ws, STAGE)
    assert model == "reasoning"
    assert reason == (
        "scope-v1 was trained on reasoning-base-v1; the reasoning base is now reasoning-base-v2: "
        "scope falls back to the bare reasoning base until it is retrained"
    )
    code, out, err = _run(ws, "adapters", "resolve", STAGE)
    assert (code, out) == (0, "reasoning\n")
    assert "falls back to the bare reasoning base" in err
    exported = {row["model_tag"]: row["active"] for row in export_metadata(ws)}
    assert exported == {"scope-v1": 0, "scope-v2": 0, "scope-v3": 0}
    # Nothing is deleted: the version keeps its status, record and files.
    row = version_row(ws, "scope-v1")
    assert row.status == "active" and (ws.root / row.path / "adapter_config.json").is_file()
    assert [b.name for b in list_bases(ws)] == ["reasoning-base-v1", "reasoning-base-v2"]
    assert (ws.root / "models/reasoning-32k-v1/model.safetensors").is_file()


def test_the_old_base_s_versions_are_never_loaded_or_promoted(tmp_path: Path) -> None:
    ws = _stranded_workspace(tmp_path)
    (command,) = serve_commands(ws)
    assert "--lora-modules" not in command.argv
    assert command.notes == [
        "scope-v1 is active but not loaded: scope-v1 was trained on reasoning-base-v1; the "
        "reasoning base is now reasoning-base-v2"
    ]
    with pytest.raises(ActivationError, match="scope-v2 was trained on reasoning-base-v1"):
        promote(ws, "scope-v2", operator="ana")
    with pytest.raises(ServingError, match="only loaded on the base it was trained on"):
        load_version(VllmClient("http://127.0.0.1:9", 1), ws, version_row(ws, "scope-v2"))
    with pytest.raises(EvalRunError, match="never serves"):
        start_eval(ws, adapter="scope-v2")
    code, out, _ = _run(ws, "serve", "--print")
    assert code == 0 and "# scope-v1 is active but not loaded" in out


def test_a_rank_above_the_servers_counts_only_when_it_can_serve(tmp_path: Path) -> None:
    ws = _stranded_workspace(tmp_path)
    ws.db.execute("UPDATE adapter_versions SET rank = 64 WHERE name = 'scope-v2'")
    assert rank_limit(ws, "reasoning") == 16
    ws.db.execute("UPDATE adapter_versions SET rank = 64 WHERE name = 'scope-v3'")
    assert rank_limit(ws, "reasoning") == 64


def test_a_version_of_the_new_base_promotes_and_serves(tmp_path: Path) -> None:
    base = str(tmp_path / "ws" / "models/reasoning-32k-v2")
    with FakeVllm(base) as fake:
        port = int(fake.url.rsplit(":", 1)[1])
        ws = _stranded_workspace(tmp_path, port)
        pass_gate(ws, "scope-v3", "base")
        code, out, err = _run(ws, "adapters", "promote", "scope-v3", "--operator", "ana")
        assert code == 0, err
        assert resolve(ws, STAGE) == "scope-v3"
        assert set(fake.loaded) == {"scope-v3"}
        # Rolling back would land on scope-v1, trained on the old base: refused, said why.
        with pytest.raises(ActivationError, match="scope-v1 was trained on reasoning-base-v1"):
            rollback(ws, STAGE, "scope-v3", operator="ana")
        assert resolve(ws, STAGE) == "scope-v3"


def test_the_training_plan_and_the_adapter_list_name_what_needs_retraining(
    tmp_path: Path,
) -> None:
    ws = _stranded_workspace(tmp_path)
    assert [name for name, *_ in stranded_adapters(ws)] == ["scope-v1", "scope-v2"]
    plan = build_plan(ws, "2026-12-06T00:00:00Z", "ana")
    assert [(item.name, item.status) for item in plan.retrain] == [
        ("scope-v1", "active"),
        ("scope-v2", "candidate"),
    ]
    code, out, _ = _run(ws, "train-plan")
    assert code == 0
    assert "to retrain:" in out
    assert "scope-v1 (active): scope-v1 was trained on reasoning-base-v1" in out
    code, out, _ = _run(ws, "adapters", "list")
    assert "scope-v3             candidate reasoning-base-v2" in out
    assert "unservable: scope-v2 was trained on reasoning-base-v1" in out
    code, out, _ = _run(ws, "bases", "list")
    assert "reasoning-base-v2      current" in out
    assert "reasoning-base-v1      retired" in out
    assert "(context target 32k)" in out
    code, out, _ = _run(ws, "adapters", "trace", "scope-v1")
    assert "never served: scope-v1 was trained on reasoning-base-v1" in out


def test_adapters_from_before_bases_were_versioned_are_adopted_by_the_first_base(
    tmp_path: Path,
) -> None:
    ws = _workspace(tmp_path / "ws")
    add_version(ws, STAGE, 1)
    add_version(ws, STAGE, 2)
    ws.db.execute(
        "UPDATE adapter_versions SET base_model_path = 'models/gone' WHERE name = 'scope-v2'"
    )
    assert version_row(ws, "scope-v1").base_version_id is None
    # Nothing is registered yet: nothing to hold an adapter against.
    assert stranded_adapters(ws) == []
    done = register_base(ws, "reasoning")
    assert version_row(ws, "scope-v1").base_version_id == done.version.id
    assert version_row(ws, "scope-v2").base_version_id is None
    assert done.stranded == [("scope-v2", "candidate")]
    ((name, _, _, reason),) = stranded_adapters(ws)
    assert name == "scope-v2" and "records no base version" in reason
