import re

import pytest

from conftest import write_experiment
from lorasweep.config import ConfigError, load_config, parse_overrides


def test_loads_and_sorts_sizes(sandbox):
    p = write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[500, 100])
    cfg = load_config(p)
    assert cfg.name == "x"
    assert cfg.train_sizes == [100, 500]
    assert cfg.train.resolved_args()["finetuning_type"] == "lora"


def test_unknown_key_did_you_mean(sandbox):
    p = write_experiment(sandbox / "experiments" / "x.yaml", train_size=[1])
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "unknown key 'train_size'; did you mean 'train_sizes'?" in str(e.value)


def test_unknown_nested_key_did_you_mean(sandbox):
    p = write_experiment(sandbox / "experiments" / "x.yaml",
                         eval={"decodng": "free"})
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "eval.decodng: unknown key 'decodng'; did you mean 'decoding'?" in str(e.value)


def test_train_args_pass_through_any_key(sandbox):
    p = write_experiment(sandbox / "experiments" / "x.yaml",
                         train={"args": {"lora_rank": 16, "some_future_llamafactory_key": 3}})
    args = load_config(p).train.resolved_args()
    assert args["lora_rank"] == 16 and args["some_future_llamafactory_key"] == 3


def test_managed_train_keys_rejected(sandbox):
    p = write_experiment(sandbox / "experiments" / "x.yaml", train={"args": {"output_dir": "/tmp/x"}})
    with pytest.raises(ConfigError, match="set by lorasweep per run"):
        load_config(p)


def test_command_line_overrides_win(sandbox):
    p = write_experiment(sandbox / "experiments" / "x.yaml")
    cfg = load_config(p, set_args=["seeds=[3,4]", "train.args.num_train_epochs=5", "eval.decoding=constrained"])
    assert cfg.seeds == [3, 4]
    assert cfg.train.resolved_args()["num_train_epochs"] == 5
    assert cfg.eval.decoding == "constrained"


@pytest.mark.parametrize("over,msg", [
    ({"train_sizes": [0, 10]}, "train sizes must be positive"),
    ({"train_sizes": [10, 10]}, "duplicate train sizes"),
    ({"seeds": [1, 1]}, "duplicate seeds"),
    ({"models": []}, "at least one model"),
    ({"task": {"type": "relation_classification", "labels": ["a", "b"], "prompt": "{text}"}}, "must contain {entity1}"),
    ({"task": {"labels": ["a", "a"], "prompt": "{text}"}}, "duplicate labels"),
    ({"eval": {"decoding": "greedy"}}, "eval.decoding"),
    ({"name": "bad name/.."}, "must be letters"),
    ({"executor": "ray", "train": {"runs_per_gpu": 2, "gpus_per_run": 2}}, "Ray shares one GPU between tasks"),
    ({"seeds": [-1]}, r"seeds \[-1\] are out of range: a seed is a whole number from 0 to 4294967295"),
    ({"seeds": [1, 2**32]}, r"seeds \[4294967296\] are out of range"),
    ({"data": {"source": "generate:people_relations", "split_seed": -3}}, "data.split_seed"),
    ({"task": {"labels": ["a", "b"], "prompt": "从{lables}中选一个：{text}"}},
     r"\{lables\} \(did you mean \{labels\}\?\) is not a field of a text_classification task \(its fields: "
     r"\{text\}, \{labels\}\)"),
    ({"task": {"labels": ["a", "b"], "prompt": "{text} {entity1}"}}, r"\{entity1\} is not a field"),
    ({"task": {"labels": ["a", "b"], "prompt": "{{text}}"}}, r"must contain \{text\}"),
])
def test_bad_values_are_explained(sandbox, over, msg):
    p = write_experiment(sandbox / "experiments" / "x.yaml", **over)
    with pytest.raises(ConfigError, match=msg):
        load_config(p)


def test_missing_file_and_bad_yaml(sandbox):
    with pytest.raises(ConfigError, match="not found"):
        load_config(sandbox / "nope.yaml")
    bad = sandbox / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_parse_overrides():
    assert parse_overrides(["a.b=3", "c=[1, 2]", "d=text"]) == {"a.b": 3, "c": [1, 2], "d": "text"}
    with pytest.raises(ConfigError):
        parse_overrides(["novalue"])


@pytest.mark.parametrize("item, msg", [
    ("seeds=[1,2", "the value is not valid YAML"),
    ("train.args={a: 1", "the value is not valid YAML"),
    ("=3", "no key before '='"),
])
def test_a_malformed_set_value_is_explained_without_a_traceback(item, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        parse_overrides([item])
    assert item in str(e.value) and "Traceback" not in str(e.value)


def test_prompt_placeholders_fill_once_and_escaped_braces_stay_literal(sandbox):
    from lorasweep.tasks.prompts import render_prompt

    prompt = '回答JSON {"label": "x"}，写作{{labels}}：{labels}\n{text}'
    p = write_experiment(sandbox / "experiments" / "x.yaml", task={"labels": ["a", "b"], "prompt": prompt})
    task = load_config(p).task
    # a text holding a placeholder is not filled again; {{ }} are one brace each
    assert render_prompt(task, {"text": "t {labels}"}) == '回答JSON {"label": "x"}，写作{labels}：a、b\nt {labels}'


def test_demo_config_is_valid():
    from conftest import ROOT
    cfg = load_config(ROOT / "experiments" / "demo.yaml")
    assert len(cfg.train_sizes) >= 3 and cfg.data.test_size >= 150


def test_a_models_train_args_may_not_set_what_lorasweep_sets_per_run(sandbox):
    p = write_experiment(sandbox / "experiments" / "x.yaml",
                         models=[{"name": "m", "path": "embedded:gemma-3-270m", "template": "gemma",
                                  "train_args": {"seed": 3}}])
    with pytest.raises(ConfigError, match=r"remove them from models\[\].train_args"):
        load_config(p)


BASE_YAML = """name: x
task:
  type: text_classification
  labels: {labels}
  prompt: "{{text}}"
data:
  source: generate:people_relations
models:
  - name: m1
    path: embedded:gemma-3-270m
    template: gemma
  - name: m2
    path: embedded:gemma-3-270m
    template: gemma
train_sizes: [10]
seeds: [1]
"""


@pytest.mark.parametrize("extra, msg", [
    ("seeds: [2]\n", r"x\.yaml:17: key 'seeds' is given twice \(lines 16 and 17\); keep one"),
    ("models: []\n", r"x\.yaml:17: key 'models' is given twice \(lines 8 and 17\); keep one"),
    ("data: {source: a.jsonl, source: b.jsonl}\n", r"x\.yaml:17: key 'source' is given twice \(both on line 17\)"),
])
def test_a_key_given_twice_in_the_yaml_is_refused_naming_both_lines(sandbox, extra, msg):
    p = sandbox / "experiments" / "x.yaml"
    p.write_text(BASE_YAML.format(labels="[a, b]") + extra)
    with pytest.raises(ConfigError, match=msg):
        load_config(p)


def test_yaml_merge_keys_may_still_override_what_they_merge(sandbox):
    p = sandbox / "experiments" / "x.yaml"
    p.write_text(BASE_YAML.format(labels="[a, b]").replace("train_sizes: [10]\n", "") +
                 "variants:\n  base: &b {lora_rank: 8, lora_alpha: 16}\n  r64:\n    <<: *b\n    lora_rank: 64\n"
                 "train_sizes: [10]\n")
    assert load_config(p).variants["r64"] == {"lora_rank": 64, "lora_alpha": 16}


@pytest.mark.parametrize("labels, msg", [
    ('["Yes", "yes", "no"]', r"task\.labels: 'Yes' and 'yes' are the same label once answers are normalised "
                             r"\(width, case, trailing punctuation\), so scoring cannot tell them apart; keep one"),
    ('["yes", "no", "ｙｅｓ"]', "'yes' and 'ｙｅｓ' are the same label once answers are normalised"),
    ('["父母 ", "朋友"]', r"task\.labels: '父母 ' has spaces at its ends \(data labels are read stripped\); "
                          r"write '父母'"),
    ('["", "a", "b"]', r"task\.labels: '' is an empty label; write its text or remove it"),
])
def test_labels_that_scoring_or_the_data_cannot_tell_apart_are_refused(sandbox, labels, msg):
    p = sandbox / "experiments" / "x.yaml"
    p.write_text(BASE_YAML.format(labels=labels))
    with pytest.raises(ConfigError, match=msg) as e:
        load_config(p)
    assert len(str(e.value).splitlines()) == 2


@pytest.mark.parametrize("labels, msgs", [
    ("[yes, no]", [r'task\.labels\.0: Input should be a valid string; YAML read yes as a boolean \(True\); quote it: '
                   r'"yes"', r'task\.labels\.1: .*YAML read no as a boolean \(False\); quote it: "no"']),
    ("[0, 1]", [r'task\.labels\.0: .*YAML read 0 as a number \(0\); quote it: "0"']),
])
def test_yaml_booleans_and_numbers_where_text_is_expected_say_to_quote_them(sandbox, labels, msgs):
    p = sandbox / "experiments" / "x.yaml"
    p.write_text(BASE_YAML.format(labels=labels))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    for msg in msgs:
        assert re.search(msg, str(e.value)), str(e.value)


def test_a_name_yaml_reads_as_a_number_is_shown_as_written(sandbox):
    p = sandbox / "experiments" / "x.yaml"
    p.write_text(BASE_YAML.format(labels="[a, b]").replace("name: x", "name: 0123"))   # YAML 1.1: octal 83
    with pytest.raises(ConfigError, match=r'name: .*YAML read 0123 as a number \(83\); quote it: "0123"'):
        load_config(p)
    with pytest.raises(ConfigError, match=r'name: .*YAML read 0456 as a number \(302\); quote it: "0456"'):
        load_config(p, set_args=["name=0456"])          # a --set value, as the command line wrote it
    with pytest.raises(ConfigError, match=r'YAML read it as a boolean \(True\); quote the word as written, e\.g\. '
                                          r'"yes"'):
        load_config(p, overrides={"name": True})        # the spelling unknown


def test_set_reaches_into_a_list_item_by_its_number(sandbox):
    p = sandbox / "experiments" / "x.yaml"
    p.write_text(BASE_YAML.format(labels="[a, b]") + "executor: ray\n")
    cfg = load_config(p, set_args=["models.1.train_args.lora_rank=16", "models.0.name=first",
                                   "executor.address=auto"])
    assert [m.name for m in cfg.models] == ["first", "m2"] and cfg.models[1].train_args == {"lora_rank": 16}
    assert cfg.executor.kind == "ray" and cfg.executor.address == "auto"   # the shorthand still expands
    with pytest.raises(ConfigError, match=r"^--set models\.3\.name: models has 2 item\(s\) \(0\.\.1\)$"):
        load_config(p, set_args=["models.3.name=x"])
    with pytest.raises(ConfigError, match=r"--set models\.m1\.name: models is a list of 2 item\(s\) \(0\.\.1\); name "
                                          r"an item by its number, e\.g\. models\.0"):
        load_config(p, set_args=["models.m1.name=x"])
    with pytest.raises(ConfigError, match=r"--set name\.x: 'name' is 'x', not a mapping or a list; write --set "
                                          r"name=<value>"):
        load_config(p, set_args=["name.x=1"])
