import json
from collections import Counter

import pytest

from conftest import write_experiment
from lorasweep import demo_data
from lorasweep.config import ConfigError, load_config
from lorasweep.splits import make_splits, prepare_data, stratified_order, train_subset


def test_generator_is_deterministic_and_varied():
    a, b = demo_data.generate(300, seed=5), demo_data.generate(300, seed=5)
    assert a == b
    assert a != demo_data.generate(300, seed=6)
    assert len({ex["text"] for ex in a}) == 300
    assert set(ex["label"] for ex in a) == set(demo_data.LABELS)
    # The asked names always appear in the sentence.
    assert all(ex["entity1"] in ex["text"] and ex["entity2"] in ex["text"] for ex in a)


def test_stratified_prefixes_are_balanced():
    exs = [{"text": str(i), "label": "a" if i % 4 else "b"} for i in range(400)]  # 75% a, 25% b
    order = stratified_order(exs, seed=1)
    for k in (20, 100, 200):
        c = Counter(ex["label"] for ex in order[:k])
        assert abs(c["b"] - k / 4) <= 1


def _cfg(sandbox, **over):
    return load_config(write_experiment(sandbox / "experiments" / "x.yaml", **over))


def test_nested_disjoint_seeded(sandbox):
    cfg = _cfg(sandbox, task={"type": "relation_classification", "labels": demo_data.LABELS,
                              "prompt": "{text}{entity1}{entity2}"}, train_sizes=[20, 60])
    sp = make_splits(cfg)
    test_keys = {ex["text"] for ex in sp.test}
    small, big = train_subset(sp, 20, 1), train_subset(sp, 60, 1)
    assert [ex["text"] for ex in small] == [ex["text"] for ex in big[:20]]   # nested
    assert not test_keys & {ex["text"] for ex in big}                       # disjoint from test
    assert train_subset(sp, 60, 2) != big                                   # seed changes the sample
    assert make_splits(cfg).test == sp.test                                 # test set fixed


def test_prepare_writes_alpaca_and_registry(sandbox):
    cfg = _cfg(sandbox, task={"type": "relation_classification", "labels": demo_data.LABELS,
                              "prompt": "标签：{labels}\n{text}\n{entity1}/{entity2}"})
    prepare_data(cfg)
    info = json.loads((sandbox / "dataset_info.json").read_text())
    assert set(info) == {"x__n10_seed1", "x__n20_seed1"}
    rows = json.loads((sandbox / info["x__n10_seed1"]["file_name"]).read_text())
    assert len(rows) == 10 and rows[0]["input"] == "" and rows[0]["output"] in demo_data.LABELS
    assert rows[0]["instruction"].startswith("标签：夫妻、父母")
    # Other registered datasets are kept.
    info["mine"] = {"file_name": "x.json"}
    (sandbox / "dataset_info.json").write_text(json.dumps(info))
    prepare_data(cfg)
    assert "mine" in json.loads((sandbox / "dataset_info.json").read_text())


def test_prepare_again_leaves_unchanged_files_untouched(sandbox):
    """LLaMA-Factory's dataset cache is keyed on the files' mtimes: a rerun
    with the same config must not rewrite them; a changed config must."""
    import os

    cfg = _cfg(sandbox)
    prepare_data(cfg)
    files = sorted((sandbox / "data" / "x").glob("*.json"))
    assert len(files) >= 3
    for f in files:
        os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    prepare_data(cfg)
    assert all(f.stat().st_mtime_ns == 1_000_000_000 for f in files)
    prepare_data(_cfg(sandbox, task={"type": "relation_classification", "labels": demo_data.LABELS,
                                     "prompt": "另一个提示：{labels}\n{text}\n{entity1}/{entity2}"}))
    changed = [f for f in files if f.stat().st_mtime_ns != 1_000_000_000]
    assert changed and all(f.name != "test.json" for f in changed)   # the test set is the same examples


def test_user_data_jsonl_csv_with_columns(sandbox):
    rows = [{"sentence": f"句子{i}", "cls": "a" if i % 2 else "b"} for i in range(40)]
    (sandbox / "data" / "mine.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    cfg = _cfg(sandbox, task={"type": "text_classification", "labels": ["a", "b"], "prompt": "{text}"},
               data={"source": "data/mine.jsonl", "test_size": 10, "text_column": "sentence", "label_column": "cls"})
    sp = make_splits(cfg)
    assert len(sp.test) == 10 and len(sp.pool) == 30
    (sandbox / "data" / "mine.csv").write_text("sentence,cls\n" + "\n".join(f"{r['sentence']},{r['cls']}" for r in rows))
    cfg2 = _cfg(sandbox, task={"type": "text_classification", "labels": ["a", "b"], "prompt": "{text}"},
                data={"source": "data/mine.csv", "test_size": 10, "text_column": "sentence", "label_column": "cls"})
    assert len(make_splits(cfg2).pool) == 30


@pytest.mark.parametrize("rows,over,msg", [
    ([{"text": "x", "label": "zz"}] * 5, {}, "labels not in task.labels"),
    ([{"txt": "x", "label": "a"}] * 5, {}, "lacks column"),
    ([{"text": f"t{i}", "label": "a"} for i in range(20)], {"train_sizes": [50]}, "larger than the"),
])
def test_bad_data_is_explained(sandbox, rows, over, msg):
    (sandbox / "data" / "d.json").write_text(json.dumps(rows))
    cfg = _cfg(sandbox, task={"type": "text_classification", "labels": ["a", "b"], "prompt": "{text}"},
               data={"source": "data/d.json", "test_size": 5}, **over)
    with pytest.raises(ConfigError, match=msg):
        make_splits(cfg)


def test_missing_data_file(sandbox):
    cfg = _cfg(sandbox, data={"source": "data/none.jsonl"})
    with pytest.raises(ConfigError, match="file not found"):
        make_splits(cfg)


def test_patent_and_ner_generators():
    pats = demo_data.generate_patents(200, seed=1)
    assert pats == demo_data.generate_patents(200, seed=1)
    assert {p["label"] for p in pats} == set(demo_data.PATENT_LABELS)
    ner = demo_data.generate_ner(200, seed=1)
    assert any(not ex["entities"] for ex in ner) and any(len(ex["entities"]) >= 2 for ex in ner)
    for ex in ner:
        assert all(e in ex["text"] and t in demo_data.NER_TYPES for e, t in ex["entities"])


def test_ner_data_flow(sandbox):
    cfg = _cfg(sandbox, task={"type": "ner", "labels": demo_data.NER_TYPES, "prompt": "实体：{text}"},
               data={"source": "generate:ner", "generate_size": 120, "test_size": 30})
    prepare_data(cfg)
    test = json.loads((sandbox / "data" / "x" / "test.json").read_text())
    with_ents = next(ex for ex in test if ex["entities"])
    assert with_ents["label"] == "\n".join(f"{e}_{t}" for e, t in with_ents["entities"])
    rows = json.loads((sandbox / "data" / "x" / "train_n10_seed1.json").read_text())
    assert all(r["output"] == "没有" or "_" in r["output"] for r in rows)


def test_ner_bad_type_reported(sandbox):
    (sandbox / "data" / "n.jsonl").write_text(json.dumps({"text": "王五在北京", "entities": [["北京", "城市"]]},
                                                         ensure_ascii=False) + "\n")
    cfg = _cfg(sandbox, task={"type": "ner", "labels": ["人名", "地名"], "prompt": "{text}"},
               data={"source": "data/n.jsonl", "test_size": 1})
    with pytest.raises(ConfigError, match="entity types not in task.labels"):
        make_splits(cfg)


def test_ner_refuses_constrained_decoding(sandbox):
    with pytest.raises(ConfigError, match="constrained decoding needs a closed label set"):
        _cfg(sandbox, task={"type": "ner", "labels": ["人名", "地名"], "prompt": "{text}"},
             eval={"decoding": "constrained"})


def test_all_demo_configs_load():
    from conftest import ROOT
    for name in ("demo", "demo_patents", "demo_ner"):
        cfg = load_config(ROOT / "experiments" / f"{name}.yaml")
        assert cfg.name == name


def _relation_rows(n, offset=0):
    """The seeds' relation format under other column names (as someone else's file has them)."""
    return [{"sentence": f"{i}号：###与###是同事。", "head": f"甲{i}", "tail": f"乙{i}", "relation": "ab"[i % 2]}
            for i in range(offset, offset + n)]


MAPPING = {"text_column": "sentence", "entity1_column": "head", "entity2_column": "tail", "label_column": "relation"}


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet", "saved_dataset", "saved_dict"])
def test_every_data_format_with_column_mapping_and_a_given_test_file(sandbox, fmt):
    import pandas as pd

    train, test = pd.DataFrame(_relation_rows(40)), pd.DataFrame(_relation_rows(12, offset=100))
    d = sandbox / "data"
    if fmt == "saved_dict":
        from datasets import Dataset, DatasetDict
        DatasetDict({"train": Dataset.from_pandas(train), "test": Dataset.from_pandas(test)}).save_to_disk(d / "ds")
        source, test_file = "data/ds", "data/ds:test"
    else:
        for name, df in (("train", train), ("test", test)):
            if fmt == "jsonl":
                df.to_json(d / f"{name}.jsonl", orient="records", lines=True, force_ascii=False)
            elif fmt == "json":
                df.to_json(d / f"{name}.json", orient="records", force_ascii=False)
            elif fmt in ("csv", "tsv"):
                df.to_csv(d / f"{name}.{fmt}", index=False, sep="\t" if fmt == "tsv" else ",")
            elif fmt == "parquet":
                df.to_parquet(d / f"{name}.parquet")
            else:
                from datasets import Dataset
                Dataset.from_pandas(df).save_to_disk(d / name)
        ext = "" if fmt == "saved_dataset" else f".{fmt}"
        source, test_file = f"data/train{ext}", f"data/test{ext}"
    cfg = _cfg(sandbox, task={"type": "relation_classification", "labels": ["a", "b"],
                              "prompt": "{text} {entity1} {entity2}"},
               data={"source": source, "test_file": test_file, **MAPPING}, train_sizes=[20, 40])
    sp = make_splits(cfg)
    assert len(sp.pool) == 40 and len(sp.test) == 12
    assert sp.test[0] == {"text": "100号：###与###是同事。", "label": "a", "entity1": "甲100", "entity2": "乙100"}


def test_a_dataset_dict_without_the_split_says_which_it_has(sandbox):
    import pandas as pd
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_pandas(pd.DataFrame(_relation_rows(40)))}).save_to_disk(sandbox / "data" / "ds")
    cfg = _cfg(sandbox, task={"type": "relation_classification", "labels": ["a", "b"],
                              "prompt": "{text} {entity1} {entity2}"},
               data={"source": "data/ds:validation", **MAPPING})
    with pytest.raises(ConfigError, match=r"no split 'validation' \(it has \['train'\]\); name one as .*:<split>"):
        make_splits(cfg)
    (sandbox / "data" / "plain").mkdir()
    cfg = _cfg(sandbox, data={"source": "data/plain"})
    with pytest.raises(ConfigError, match="not one written by datasets' save_to_disk"):
        make_splits(cfg)
