"""Bad inputs found before the night: each problem is reported with where it is and what to do."""
import json
import stat
import sys

import pytest

from conftest import write_experiment
from lorasweep.check import check
from lorasweep.config import ConfigError, load_config
from lorasweep.train.train import run_training

FAKE_PYTHON = """import json, os, sys
if any(a.endswith("token_lengths.py") for a in sys.argv):
    # one token per character; LLaMA-Factory's rule when the pair is too long: the answer keeps
    # what it can when it is short, else both shrink in proportion
    data, cutoff = json.loads(sys.stdin.read()), int(sys.argv[-1])
    def kept(p, a):
        t = cutoff if a * 2 < cutoff else cutoff - p if p * 2 < cutoff else int(cutoff * a / (p + a))
        t = min(t, a)
        return [p, a, min(p, max(cutoff - t, 0)), t]
    print(json.dumps({"train": [kept(len(p) + 4, len(a) + 1) for p, a in data["train"]],
                      "test": [len(p) + 4 for p in data["test"]]}))
elif any(a.endswith("parity_encode.py") for a in sys.argv):
    print(os.environ.get("FAKE_ENCODING") or json.dumps({"prompt_ids": [2, 5, 6], "answer_ids": [9, 106, 107],
                                                          "label_ids": [9], "chat_template_prompt_ids": [2, 5, 6]}))
elif any(a.endswith("train_args_check.py") for a in sys.argv):
    # LLaMA-Factory's verdict on the runs' train.yaml: FAKE_ARGS_VERDICT per run id, else none
    runs, verdict = json.loads(sys.stdin.read()), json.loads(os.environ.get("FAKE_ARGS_VERDICT") or "[]")
    print(json.dumps({rid: verdict for rid in runs} if verdict else {}))
else:
    print('["gemma", "llama3", "qwen"]')
"""


@pytest.fixture
def fake_tools(tmp_path):
    """A model folder, and a 'training environment' whose python lists LLaMA-Factory's templates."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"hidden_size": 64, "intermediate_size": 256,
                                                   "num_hidden_layers": 2}))
    env = tmp_path / "env" / "bin"
    env.mkdir(parents=True)
    # It lists templates, or (for envscripts/parity_encode.py) prints an encoding: FAKE_ENCODING, else a
    # Gemma-like one whose answer ends at token 106 and whose chat template renders the trained prompt.
    (env / "python").write_text(f"#!{sys.executable}\n" + FAKE_PYTHON)
    (env / "llamafactory-cli").write_text("#!/bin/sh\nexit 0\n")
    for f in env.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return {"models": [{"name": "m1", "path": str(model), "template": "gemma"}],
            "train": {"llamafactory_cli": str(env / "llamafactory-cli")}}


def _data(sandbox, rows, name="d.jsonl"):
    path = sandbox / "data" / name
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return f"data/{name}"


def _rows(n, label_of=lambda i: "a" if i % 2 else "b"):
    return [{"text": f"句子{i}", "label": label_of(i)} for i in range(n)]


def _cfg(sandbox, fake_tools, **over):
    base = {"task": {"type": "text_classification", "labels": ["a", "b"], "prompt": "{text}"}, **fake_tools}
    base.update(over)
    return load_config(write_experiment(sandbox / "experiments" / "x.yaml", **base))


def _all(cfg):
    r = check.full_check(cfg)
    return "\n".join(r.errors + r.warnings)


def _warnings(cfg):
    return "\n".join(check.full_check(cfg).warnings)


def _errors(cfg):
    return "\n".join(check.full_check(cfg).errors)


def test_clean_experiment_has_no_problem(sandbox, fake_tools):
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(60)), "test_size": 20})
    report = check.full_check(cfg)
    assert report.errors == [] and report.warnings == []
    assert report.notes == ["models[m1] tokens: train prompt+answer max 10, p95 10 (0 of 20 over cutoff_len=256); "
                            "test prompt max 8, p95 8 (0 of 20 over max_model_len=1024 - 5 answer tokens)"]


def test_an_answer_cut_by_cutoff_len_is_an_error_a_cut_prompt_a_warning(sandbox, fake_tools):
    # (the fake tokenizer: one token per character, + 4 for the template, + 1 for the turn end)
    rows = _rows(40) + [{"text": "长" * 300, "label": "a"}]
    data = {"source": _data(sandbox, rows), "test_size": 10}
    cfg = _cfg(sandbox, fake_tools, data=data, train_sizes=[31], train={**fake_tools["train"],
                                                                          "args": {"cutoff_len": 200}})
    assert "1 training prompt(s) longer than cutoff_len=200 tokens lose their end in training (the answer is " \
           "kept); raise train.args.cutoff_len to 307" in _warnings(cfg)
    assert _errors(cfg) == ""
    cfg = _cfg(sandbox, fake_tools, data=data, train_sizes=[31], train={**fake_tools["train"],
                                                                          "args": {"cutoff_len": 3}})
    errors = _errors(cfg)
    assert "31 training example(s) longer than cutoff_len=3 tokens would have their answer cut (e.g. '" in errors
    assert "-token example); raise train.args.cutoff_len to 307 or shorten the prompt" in errors
    assert "(31 of 31 over cutoff_len=3)" in "\n".join(check.full_check(cfg).notes)


def test_a_test_prompt_too_long_to_serve_is_an_error(sandbox, fake_tools):
    rows = [{"text": (f"{i:02d}" + "长" * 298 if i % 4 == 0 else f"句子{i}"), "label": "ab"[i % 2]} for i in range(60)]
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, rows), "test_size": 20},
               eval={"max_model_len": 256})
    assert "test prompt(s) up to 304 tokens do not fit eval.max_model_len=256 with 5 answer tokens; raise " \
           "eval.max_model_len to 309" in _errors(cfg)


@pytest.mark.parametrize("rows,over,expect", [
    (_rows(60) + [{"text": "", "label": "a"}], {}, "1 example(s) with an empty text"),
    (_rows(30), {"train_sizes": [10, 50]}, "train_sizes: [50] larger than the 10 examples left"),
    (_rows(60, lambda i: "a"), {}, "no test example for label(s) ['b']"),
    (_rows(10), {"data_test_size": 10}, "data.test_size=10 leaves nothing to train on"),
])
def test_data_errors(sandbox, fake_tools, rows, over, expect):
    data = {"source": _data(sandbox, rows), "test_size": over.pop("data_test_size", 20)}
    cfg = _cfg(sandbox, fake_tools, data=data, **over)
    assert expect in _errors(cfg)


def test_duplicates_are_a_warning_and_kept_once(sandbox, fake_tools):
    rows = _rows(60) + [{"text": "句子3", "label": "b"}, {"text": "句子4", "label": "b"}]   # 句子3 is "a"
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, rows), "test_size": 20})
    report = check.full_check(cfg)
    assert report.errors == []
    assert "2 duplicate example(s) (1 with another label than the first), e.g. '句子3'; each is kept once" \
        in "\n".join(report.warnings)
    from lorasweep.data.splits import make_splits
    s = make_splits(cfg)
    assert len(s.pool) + len(s.test) == 60      # 62 rows, 60 distinct


def test_entity_not_in_text(sandbox, fake_tools):
    rows = [{"text": f"张三和李四{i}", "entity1": "张三", "entity2": "王五" if i == 0 else "李四", "label": "a"}
            for i in range(40)]
    cfg = _cfg(sandbox, fake_tools, task={"type": "relation_classification", "labels": ["a", "b"],
                                          "prompt": "{text}{entity1}{entity2}"},
               data={"source": _data(sandbox, rows), "test_size": 10})
    assert "1 of 40 example(s) name an entity that does not occur in the text (masked entities?), " \
           "e.g. '张三和李四0' (张三, 王五)" in _warnings(cfg)


def test_test_examples_in_training_data(sandbox, fake_tools):
    src = _data(sandbox, _rows(60))
    test = _data(sandbox, _rows(5), "test.jsonl")
    cfg = _cfg(sandbox, fake_tools, data={"source": src, "test_file": test})
    assert "5 test example(s) also appear in data/d.jsonl, e.g. '句子0'; they are left out of training" \
        in _warnings(cfg)
    assert _errors(cfg) == ""


def test_unknown_template_did_you_mean(sandbox, fake_tools):
    fake_tools["models"][0]["template"] = "gema"
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(60)), "test_size": 20})
    assert "LLaMA-Factory has no template 'gema'; did you mean 'gemma'?" in _all(cfg)


def test_missing_model_cli_and_server(sandbox, fake_tools, tmp_path):
    fake_tools["models"][0]["path"] = str(tmp_path / "gone")
    fake_tools["train"]["llamafactory_cli"] = str(tmp_path / "no-cli")
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(60)), "test_size": 20},
               eval={"vllm_python": str(tmp_path / "no-python")})
    out = _all(cfg)
    assert f"no checkpoint at {tmp_path / 'gone'}" in out
    assert "no-cli not found" in out and "no-python not found" in out


def test_unknown_embedded_model(sandbox, fake_tools):
    fake_tools["models"][0]["path"] = "embedded:gpt-5"
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(60)), "test_size": 20})
    assert "unknown embedded model 'gpt-5'" in _all(cfg)


def test_too_little_disk(sandbox, fake_tools, monkeypatch):
    import shutil
    from collections import namedtuple

    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(60)), "test_size": 20})
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("U", "total used free")(10, 10, 1000))
    assert "disk: the planned adapters and models need about" in _all(cfg)


@pytest.mark.parametrize("text,expect", [
    ('{"text": "a", "label": "a"}\n{"text": "b", "label": \n', "d.jsonl:2: not valid JSON"),
    ("just words", "not valid JSON"),
])
def test_broken_files(sandbox, fake_tools, text, expect):
    (sandbox / "data" / "d.jsonl").write_text(text)
    cfg = _cfg(sandbox, fake_tools, data={"source": "data/d.jsonl", "test_size": 1})
    assert expect in _all(cfg)


def test_unsupported_format(sandbox, fake_tools):
    (sandbox / "data" / "d.xlsx").write_text("x")
    cfg = _cfg(sandbox, fake_tools, data={"source": "data/d.xlsx"})
    assert "unsupported data format '.xlsx'" in _all(cfg)


def test_train_stops_before_any_run_and_lists_every_problem(sandbox, fake_tools):
    rows = _rows(30) + [{"text": "", "label": "a"}, {"text": "句子1", "label": "a"}]
    fake_tools["models"][0]["template"] = "qwen3x"
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, rows), "test_size": 10}, train_sizes=[10, 40])
    with pytest.raises(ConfigError) as e:
        run_training(cfg)
    msg = str(e.value)
    assert "3 problem(s) found before train" in msg
    for part in ("empty text", "train_sizes: [40]", "no template 'qwen3x'"):
        assert part in msg
    assert "duplicate" not in msg      # a warning: it does not stop training
    assert not (sandbox / "experiments" / "x" / "runs").exists()


def test_check_command_exit_codes(sandbox, fake_tools, capsys):
    from lorasweep.cli import main

    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(60)), "test_size": 20})
    assert main(["check", str(cfg.path)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(60)), "test_size": 20}, train_sizes=[100])
    assert main(["check", str(cfg.path)]) == 1
    assert "1 error(s), 0 warning(s)" in capsys.readouterr().out


def _masked_relation_data(sandbox):
    """The seeds' format as public sets come: entity names masked with ### in the
    sentence, some sentences repeated, some test sentences in the train file."""
    train = [{"text": f"###和###是第{i}对搭档。", "entity1": f"甲{i}", "entity2": f"乙{i}", "label": "ab"[i % 2]}
             for i in range(60)]
    train += train[:5]                                   # 5 repeated
    test = train[10:13] + [{"text": f"###与###第{i}次见面。", "entity1": f"丙{i}", "entity2": f"丁{i}",
                            "label": "ab"[i % 2]} for i in range(12)]
    return {"source": _data(sandbox, train), "test_file": _data(sandbox, test, "test.jsonl")}


def test_real_world_data_warns_trains_and_strict_refuses(sandbox, fake_tools, capsys):
    from lorasweep.cli import main

    cfg = _cfg(sandbox, fake_tools, task={"type": "relation_classification", "labels": ["a", "b"],
                                          "prompt": "{text}|{entity1}|{entity2}"},
               data=_masked_relation_data(sandbox), train_sizes=[20, 50])
    assert main(["check", str(cfg.path)]) == 0
    out = capsys.readouterr().out
    for part in ("warning: data/d.jsonl: 65 of 65 example(s) name an entity that does not occur in the text",
                 "warning: data/d.jsonl: 5 duplicate example(s) (0 with another label than the first)",
                 "warning: data/test.jsonl: 3 test example(s) also appear in data/d.jsonl",
                 "0 error(s), 3 warning(s) (warnings only: the sweep can run"):
        assert part in out, out
    recorded = json.loads((sandbox / "experiments" / "x" / "check.json").read_text())
    assert recorded["errors"] == [] and len(recorded["warnings"]) == 3
    assert main(["check", str(cfg.path), "--strict"]) == 1
    assert "(--strict: warnings count)" in capsys.readouterr().out
    # The splits follow the documented rule: 60 distinct, 3 of them in the test file -> 57 to train on.
    from lorasweep.data.splits import make_splits
    s = make_splits(cfg)
    assert len(s.pool) == 57 and len(s.test) == 15
    with pytest.raises(ConfigError, match=r"3 problem\(s\) \(warnings count: --strict\) found before train"):
        run_training(cfg, strict=True)
    assert not list((sandbox / "experiments" / "x").rglob("train.yaml"))
    run_training(cfg)                                    # without --strict the sweep goes on:
    assert len(list((sandbox / "experiments" / "x").rglob("train.yaml"))) == 2   # both runs started


def test_template_list_is_asked_once_per_environment(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("LORASWEEP_HOME", str(tmp_path / "home"))
    env = tmp_path / "lf" / "bin"
    env.mkdir(parents=True)
    calls = tmp_path / "calls"
    (env / "python").write_text(f"#!{sys.executable}\nopen({str(calls)!r}, 'a').write('x')\n"
                                "print('[\"gemma\", \"qwen\"]')\n")
    (env / "python").chmod(0o755)
    assert check.known_templates(env / "python") == ["gemma", "qwen"]
    assert check.known_templates(env / "python") == ["gemma", "qwen"]
    assert calls.read_text() == "x"                       # the second answer came from the cache
    assert check.known_templates(env / "python", refresh=True) == ["gemma", "qwen"]
    assert calls.read_text() == "xx"


@pytest.mark.parametrize("encoding, expect", [
    ({"prompt_ids": [2, 5, 6], "answer_ids": [9], "label_ids": [9], "chat_template_prompt_ids": [2, 5, 6]},
     "LLaMA-Factory puts no token after an answer"),
    ({"prompt_ids": [2, 5, 6], "answer_ids": [9, 106], "label_ids": [9], "chat_template_prompt_ids": [2, 7, 5, 6]},
     "renders a prompt different from the trained one from token 1 on"),
])
def test_a_template_that_cannot_be_served_with_parity_stops_the_sweep(sandbox, fake_tools, monkeypatch,
                                                                      encoding, expect):
    monkeypatch.setenv("FAKE_ENCODING", json.dumps(encoding))
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(40)), "test_size": 10}, train_sizes=[10])
    assert expect in _all(cfg)
    with pytest.raises(ConfigError):
        run_training(cfg)


def test_the_answer_end_token_becomes_the_stop_token_unless_set(sandbox, fake_tools):
    from lorasweep.models.parity import served_stop_ids

    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(40)), "test_size": 10}, train_sizes=[10])
    with pytest.raises(RuntimeError, match="no stop token known for m1"):
        served_stop_ids(cfg, cfg.models[0])              # nothing encoded yet
    assert check.full_check(cfg).errors == []                  # check encodes one example and records it
    assert served_stop_ids(cfg, cfg.models[0]) == [106]
    fake_tools["models"][0]["stop_token_ids"] = [106, 1]
    own = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(40)), "test_size": 10}, train_sizes=[10])
    assert served_stop_ids(own, own.models[0]) == [106, 1]
    fake_tools["models"][0]["stop_token_ids"] = [1]
    wrong = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(40)), "test_size": 10}, train_sizes=[10])
    assert "stop_token_ids [1]: answers end at token 106 in training" in _all(wrong)


def test_imbalanced_labels_and_a_long_tail_of_lengths_are_warnings(sandbox, fake_tools):
    rows = [{"text": f"句子{i:02d}" + ("长" * 300 if i < 3 else ""), "label": "b" if i % 20 == 0 else "a"}
            for i in range(60)]
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, rows), "test_size": 20})
    w = _warnings(cfg)
    assert "labels are imbalanced: 'b' 3 against 'a' 57 (under 1/10 of the largest); macro-F1 weighs them equally" in w
    assert "3 text(s) longer than 4x the median of 4 characters (the longest 304)" in w


def test_token_lengths_of_all_models_are_counted_at_once_and_reported_in_order(sandbox, fake_tools, monkeypatch):
    import threading
    import time

    from lorasweep.data import lengths

    path = fake_tools["models"][0]["path"]
    models = [{"name": n, "path": path, "template": "gemma"} for n in ("m1", "m2", "m3")]
    cfg = _cfg(sandbox, fake_tools, models=models, data={"source": _data(sandbox, _rows(40)), "test_size": 10})
    real, running, peak, lock = lengths.count_tokens, [0], [0], threading.Lock()

    def slow_count(cfg, model, inputs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.5)
        with lock:
            running[0] -= 1
        if model.name == "m2":
            raise RuntimeError("token counting failed:\nno tokenizer here")
        return real(cfg, model, inputs)

    monkeypatch.setattr(lengths, "count_tokens", slow_count)
    monkeypatch.setattr(lengths.os, "cpu_count", lambda: 4)
    found = lengths.length_findings(cfg)
    assert peak[0] == 3                                              # one process per model, together
    assert [n.split("]")[0] for n in found.notes] == ["models[m1", "models[m3"]   # the experiment's order
    assert found.warnings == ["models[m2]: token lengths not counted: no tokenizer here"]


def test_train_args_llamafactory_refuses_are_errors_grouped_over_runs(sandbox, fake_tools, monkeypatch):
    verdict = [["unknown", "lora_rnak", "lora_rank"],
               ["type", "num_train_epochs", "'3' is a str; LLaMA-Factory expects float"],
               ["type", "learning_rate", "'2e-4' is a str; LLaMA-Factory expects float"],
               ["parser", "", "ValueError: Quantization is only compatible with the LoRA method."]]
    monkeypatch.setenv("FAKE_ARGS_VERDICT", json.dumps(verdict))
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(40)), "test_size": 10}, train_sizes=[5, 10],
               seeds=[1, 2], train={**fake_tools["train"], "args": {"lora_rnak": 8, "num_train_epochs": "3",
                                                                     "learning_rate": "2e-4"}})
    errors = _errors(cfg)
    assert ("train.args.lora_rnak: LLaMA-Factory has no training key 'lora_rnak'; did you mean 'lora_rank'? "
            "(in 4 of 4 run(s), e.g. m1__n5__seed1)") in errors
    assert "train.args.num_train_epochs: '3' is a str; LLaMA-Factory expects float; write 3 without quotes" in errors
    assert "YAML reads 2e-4 as text: write 2.0e-4" in errors
    assert "LLaMA-Factory refuses the run's train.yaml: ValueError: Quantization is only compatible" in errors
    with pytest.raises(ConfigError, match="lora_rnak"):
        run_training(cfg)
    assert not (sandbox / "experiments" / "x" / "runs").exists() or not any(
        (sandbox / "experiments" / "x" / "runs").rglob("train_result.json"))


def test_train_args_check_says_where_a_key_was_set(sandbox, fake_tools, monkeypatch):
    monkeypatch.setenv("FAKE_ARGS_VERDICT", json.dumps([["unknown", "num_train_epoch", "num_train_epochs"]]))
    models = [{**fake_tools["models"][0], "train_args": {"num_train_epoch": 3}}]
    cfg = _cfg(sandbox, fake_tools, models=models, data={"source": _data(sandbox, _rows(40)), "test_size": 10},
               train_sizes=[10])
    assert "models[m1].train_args.num_train_epoch: LLaMA-Factory has no training key" in _errors(cfg)


def test_a_template_that_adds_tokens_is_refused_unless_allowed(sandbox, fake_tools, monkeypatch):
    encoding = {"prompt_ids": [2, 5, 6], "answer_ids": [9, 262144], "label_ids": [9],
                "chat_template_prompt_ids": [2, 5, 6], "added_tokens": ["<|im_end|>"], "embedding_rows": 262144}
    monkeypatch.setenv("FAKE_ENCODING", json.dumps(encoding))
    data = {"source": _data(sandbox, _rows(40)), "test_size": 10}
    cfg = _cfg(sandbox, fake_tools, data=data, train_sizes=[10])
    errors = _errors(cfg)
    assert "adds token(s) ['<|im_end|>'] to the model's vocabulary" in errors
    assert "the answer-end token 262144 is outside its 262144 embedding rows" in errors
    allowed = _cfg(sandbox, fake_tools, data=data, train_sizes=[10],
                   models=[{**fake_tools["models"][0], "allow_new_tokens": True}])
    assert "vocabulary" not in _errors(allowed)


def test_a_checkpoint_with_its_own_model_code_needs_trust_remote_code(sandbox, fake_tools, tmp_path):
    from lorasweep.serve.serve import VLLMServer

    model = tmp_path / "model"
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_glm.ChatGLMConfig",
                          "AutoModelForCausalLM": "modeling_glm.ChatGLMForConditionalGeneration"}
    (model / "config.json").write_text(json.dumps(config))
    data = {"source": _data(sandbox, _rows(40)), "test_size": 10}
    cfg = _cfg(sandbox, fake_tools, data=data, train_sizes=[10])
    assert ("models[m1]: its config.json maps ['AutoConfig', 'AutoModelForCausalLM'] to code in the checkpoint "
            "folder (configuration_glm.py, modeling_glm.py); set models[m1].trust_remote_code: true") in _errors(cfg)
    trusted = _cfg(sandbox, fake_tools, data=data, train_sizes=[10],
                   models=[{**fake_tools["models"][0], "trust_remote_code": True}])
    assert "trust_remote_code" not in _errors(trusted)
    # it reaches LLaMA-Factory (every run's train.yaml) and the server
    assert trusted.train_args("m1")["trust_remote_code"] is True and "trust_remote_code" not in cfg.train_args("m1")
    srv = VLLMServer(trusted, trusted.models[0], {}, None, tmp_path / "s.log")
    assert "--trust-remote-code" in srv.argv
    assert "--trust-remote-code" not in VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log").argv


def test_full_and_freeze_fine_tuning_pass_and_other_methods_are_refused(sandbox, fake_tools):
    data = {"source": _data(sandbox, _rows(40)), "test_size": 10}
    cfg = _cfg(sandbox, fake_tools, data=data, train_sizes=[10],
               variants={"lora": {}, "full": {"finetuning_type": "full"}, "freeze": {"finetuning_type": "freeze"},
                         "oft": {"finetuning_type": "oft"}})
    errors = _errors(cfg)
    assert "variants.oft.finetuning_type: 'oft' writes what eval cannot serve" in errors
    assert "variants.full" not in errors and "variants.freeze" not in errors and "variants.lora" not in errors
    # kept epochs of a whole model would be a copy of it per epoch: not applied to it, said
    kept = _cfg(sandbox, fake_tools, data=data, train_sizes=[10], variants={"lora": {}, "full": {"finetuning_type": "full"}},
                train={**fake_tools["train"], "save_epochs": [1], "args": {"num_train_epochs": 2}})
    from lorasweep.check.trainargs import method_warnings, resolved_train_yaml
    from lorasweep.plan import checkpoint_runs, train_runs
    assert "not applied to the full/freeze-tuned runs of m1/full" in method_warnings(kept)[0]
    assert [r.variant for r in checkpoint_runs(kept)] == ["lora"]
    assert {r.variant: resolved_train_yaml(kept, r)["save_strategy"] for r in train_runs(kept)} == \
        {"lora": "epoch", "full": "no"}


def test_the_disk_estimate_counts_a_full_tuned_model_at_the_base_models_size(sandbox, fake_tools, monkeypatch):
    import shutil
    from collections import namedtuple

    from lorasweep.models.embedded import resolve_model_path

    data = {"source": _data(sandbox, _rows(40)), "test_size": 10}
    cfg = _cfg(sandbox, fake_tools, data=data, train_sizes=[10, 20], variants={"full": {"finetuning_type": "full"}})
    base = resolve_model_path(cfg.models[0].path)
    with open(base / "model.safetensors", "wb") as f:   # a sparse 3 GB base
        f.truncate(3_000_000_000)
    free = 15_000_000_000
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("U", "total used free")(free, 0, free))
    # 2 runs x (3.0 GB + 0.05 GB) = 6.1 GB, x2 margin = 12.2 GB < 15 GB: fine; at 10 GB free it is not
    assert check.disk_problems(cfg) == []
    free = 10_000_000_000
    assert "about 6.1 GB (x2 margin)" in check.disk_problems(cfg)[0]


@pytest.mark.parametrize("rank", ["abc", [8, 16], None, 8.0])
def test_the_disk_estimate_skips_a_lora_rank_that_is_not_an_int(sandbox, fake_tools, rank):
    data = {"source": _data(sandbox, _rows(40)), "test_size": 10}
    cfg = _cfg(sandbox, fake_tools, data=data, train={**fake_tools["train"], "args": {"lora_rank": rank}})
    assert check.disk_problems(cfg) == []      # LLaMA-Factory's argument check reports the type
    cfg = load_config(cfg.path, set_args=["train.args.lora_rank=abc"])
    assert check.disk_problems(cfg) == []


def test_the_disk_estimate_counts_an_int_lora_rank(sandbox, fake_tools, monkeypatch):
    import shutil
    from collections import namedtuple

    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("U", "total used free")(10, 10, 1000))
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(40)), "test_size": 10},
               variants={"bad": {"lora_rank": "x"}, "r16": {"lora_rank": 16}})
    assert "disk: the planned adapters and models need about" in check.disk_problems(cfg)[0]


def test_blank_relation_entities_are_an_error(sandbox, fake_tools):
    rows = [{"text": f"张三和李四{i}", "entity1": "张三", "entity2": "李四", "label": "ab"[i % 2]} for i in range(40)]
    rows[3]["entity1"], rows[5]["entity2"] = "", "  "
    cfg = _cfg(sandbox, fake_tools, task={"type": "relation_classification", "labels": ["a", "b"],
                                          "prompt": "{text}{entity1}{entity2}"},
               data={"source": _data(sandbox, rows), "test_size": 10})
    assert ("data/d.jsonl: 2 example(s) with an empty entity1/entity2 (columns entity1, entity2), e.g. '张三和李四3' "
            "('', '李四'); fill them in or remove the rows") in _errors(cfg)


@pytest.mark.parametrize("value, expects, hint", [
    (False, "None | str | list[str]",
     '; YAML reads an unquoted no, false or off as a boolean: quote the string, e.g. report_to: "none"'),
    (True, "int", "; YAML reads an unquoted yes, true or on as a boolean: write the value LLaMA-Factory expects"),
    ("false", "bool", "; write false without quotes"),
    ("3", "float", "; write 3 without quotes"),
    ("2e-4", "float", "; YAML reads 2e-4 as text: write 2.0e-4"),
    (3, "str", ""),
])
def test_a_type_hint_says_without_quotes_only_for_a_string(sandbox, fake_tools, monkeypatch, value, expects, hint):
    msg = f"{value!r} is a {type(value).__name__}; LLaMA-Factory expects {expects}"
    monkeypatch.setenv("FAKE_ARGS_VERDICT", json.dumps([["type", "report_to", msg]]))
    cfg = _cfg(sandbox, fake_tools, data={"source": _data(sandbox, _rows(40)), "test_size": 10}, train_sizes=[10],
               train={**fake_tools["train"], "args": {"report_to": value}})
    assert f"train.args.report_to: {msg}{hint} (in 1 of 1 run(s)" in _errors(cfg)


def test_an_architecture_the_pinned_vllm_lacks_is_a_warning(sandbox, fake_tools, tmp_path, monkeypatch):
    monkeypatch.setenv("LORASWEEP_HOME", str(tmp_path / "home"))
    serve = tmp_path / "serve" / "bin"
    serve.mkdir(parents=True)
    (serve / "python").write_text(f"#!{sys.executable}\nprint('[\"Gemma3ForCausalLM\", \"Qwen2ForCausalLM\"]')\n")
    (serve / "python").chmod(0o755)
    model = tmp_path / "model"
    config = json.loads((model / "config.json").read_text())
    data = {"source": _data(sandbox, _rows(40)), "test_size": 10}
    for arch, expect in (("BaichuanForCausalLM", True), ("Qwen2ForCausalLM", False)):
        (model / "config.json").write_text(json.dumps({**config, "architectures": [arch]}))
        cfg = _cfg(sandbox, fake_tools, data=data, train_sizes=[10], eval={"vllm_python": str(serve / "python")})
        said = "the serving environment's vLLM has no implementation of BaichuanForCausalLM" in _warnings(cfg)
        assert said == expect
