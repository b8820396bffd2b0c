import json
from collections import Counter

import pytest

from conftest import write_experiment
from lorasweep.config import ConfigError, load_config
from lorasweep.data import demo_data
from lorasweep.data.splits import load_examples, make_splits, prepare_data, stratified_order, train_subset


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


# The readers never change a value silently: what they cannot read exactly they refuse.

TC = {"type": "text_classification", "labels": ["a", "b"], "prompt": "{text}"}


def _load(sandbox, name, content, task=TC, **data):
    from lorasweep.data.splits import load_examples

    path = sandbox / "data" / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    cfg = _cfg(sandbox, task=task, data={"source": f"data/{name}", "test_size": 1, **data})
    return load_examples(cfg, cfg.data.source)


def test_csv_keeps_line_breaks_inside_quoted_fields(sandbox):
    rows = _load(sandbox, "q.csv", 'text,label\n"The car\nwas red",a\nx,b\n')
    assert [r["text"] for r in rows] == ["The car\nwas red", "x"]
    rows = _load(sandbox, "crlf.csv", 'text,label\r\n"one\r\ntwo",a\r\nx,b\r\n')   # kept exactly, \r\n too
    assert [r["text"] for r in rows] == ["one\r\ntwo", "x"]


def test_semicolon_csv_sniffed_or_given_and_ragged_rows_refused(sandbox):
    semi = "text;label\nhello, world;a\nbye;b\n"
    expected = [{"text": "hello, world", "label": "a"}, {"text": "bye", "label": "b"}]
    assert _load(sandbox, "s.csv", semi) == expected
    assert _load(sandbox, "s.csv", semi, sep=";") == expected
    assert _load(sandbox, "p.tsv", semi.replace(";", "|"), sep="|") == expected
    with pytest.raises(ConfigError, match=r"r\.csv: 1 row\(s\) have another number of fields than the header's 2 "
                                          r"\(separator ','\); the first, row 2 \(line 3\), has 3; .*data\.sep"):
        _load(sandbox, "r.csv", "text,label\nbye,b\nhello, world,a\n")
    with pytest.raises(ConfigError, match=r"row 1 \(line 2\), has 1"):
        _load(sandbox, "r.csv", "text,label\nhello\n")
    with pytest.raises(ConfigError, match="data.sep: 'ab' cannot separate CSV fields"):
        _load(sandbox, "s.csv", semi, sep="ab")


def test_a_gbk_csv_is_refused_naming_gbk_and_read_with_data_encoding(sandbox):
    gbk = "text,label\n罗佳毕业于国家图书馆,a\n".encode("gbk")
    with pytest.raises(ConfigError, match=r"g\.csv: not UTF-8 at byte offset 11 \(line 2: 0xc2\); it decodes as "
                                          r"GBK/GB18030 \(simplified Chinese: .*罗佳毕业于国家图书馆.*\) and as Big5 .*"
                                          r"set data\.encoding to the one it was saved in \(gbk or big5\)"):
        _load(sandbox, "g.csv", gbk)   # (GBK bytes also decode as Big5, into other characters)
    assert _load(sandbox, "g.csv", gbk, encoding="gbk") == [{"text": "罗佳毕业于国家图书馆", "label": "a"}]
    with pytest.raises(ConfigError, match="data.encoding: unknown encoding 'gkb'"):
        _load(sandbox, "g.csv", gbk, encoding="gkb")
    with pytest.raises(ConfigError, match=r"not UTF-8 at byte offset 13 .*set data\.encoding to the encoding"):
        _load(sandbox, "l.jsonl", '{"text": "café", "label": "a"}'.encode("latin-1"))
    # A BOM is still fine, with or without data.encoding: utf-8.
    bom = "\ufefftext,label\nx,a\n".encode()
    assert _load(sandbox, "b.csv", bom) == _load(sandbox, "b.csv", bom, encoding="utf-8") == [{"text": "x", "label": "a"}]


def test_jsonl_lines_end_at_newlines_only(sandbox):
    lines = [json.dumps({"text": "第一句\u2028第二\x85句", "label": "a"}, ensure_ascii=False), "",
             json.dumps({"text": "x", "label": "b"}), "{oops"]
    with pytest.raises(ConfigError, match=r"u\.jsonl:4: not valid JSON"):   # line numbers still right
        _load(sandbox, "u.jsonl", "\r\n".join(lines))
    rows = _load(sandbox, "u.jsonl", "\r\n".join(lines[:3]))
    assert rows == [{"text": "第一句\u2028第二\x85句", "label": "a"}, {"text": "x", "label": "b"}]


@pytest.mark.parametrize("bad,msg", [
    ({"text": None}, r"2 row\(s\) have a cell that is not text; the first, row 2, column 'text', has null: fill it in"),
    ({"text": ["The", "car", "was", "red"]},
     r"the first, row 2, column 'text', has \[\"The\", \"car\", \"was\", \"red\"\]: join the tokens into one string"),
    ({"label": {"name": "a"}}, r"row 2, column 'label', has \{\"name\": \"a\"\}: write the string itself"),
    ({"label": True}, r"row 2, column 'label', has true: write it as the string \"true\""),
    ({"text": 1.10}, r"row 2, column 'text', has 1\.1: write it as a string"),
])
def test_cells_that_are_not_text_are_refused(sandbox, bad, msg):
    rows = [{"text": "ok", "label": "a"}] + [{"text": f"t{i}", "label": "b", **bad} for i in range(2)]
    with pytest.raises(ConfigError, match=r"d\.jsonl: .*" + msg):
        _load(sandbox, "d.jsonl", "\n".join(json.dumps(r) for r in rows))


def test_int_cells_are_their_digits_and_empty_csv_cells_are_empty(sandbox):
    task = {"type": "text_classification", "labels": ["0", "1"], "prompt": "{text}"}
    rows = _load(sandbox, "i.jsonl", json.dumps({"text": 2024, "label": 1}), task=task)
    assert rows == [{"text": "2024", "label": "1"}]
    assert _load(sandbox, "e.csv", "text,label\n,a\n") == [{"text": "", "label": "a"}]
    with pytest.raises(ConfigError, match="column 'entity1', has 7: write it as a string"):
        _load(sandbox, "r.jsonl", json.dumps({"text": "x", "label": "a", "entity1": 7, "entity2": "y"}),
              task={**TC, "type": "relation_classification", "prompt": "{text}{entity1}{entity2}"})


NER = {"type": "ner", "labels": ["人名", "地名"], "prompt": "{text}"}


def test_ner_offsets_resolve_against_the_raw_text(sandbox):
    rows = [{"text": " 罗佳毕业于国家图书馆", "entities": [{"start": 1, "end": 3, "label": "人名"}, [6, 11, "地名"]]},
            {"text": "王五在北京", "entities": [{"start": 3, "end": 5, "text": "北京", "labels": ["地名"]}]}]
    out = _load(sandbox, "n.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), task=NER)
    assert out[0] == {"text": "罗佳毕业于国家图书馆", "entities": [["罗佳", "人名"], ["国家图书馆", "地名"]],
                      "label": "罗佳_人名\n国家图书馆_地名"}
    assert out[1]["entities"] == [["北京", "地名"]]


@pytest.mark.parametrize("ents,msg", [
    ([{"start": 0, "end": 3, "label": "人名", "text": "罗佳"}], r'row 1: entity .*: the text at \[0:3\] is "罗佳毕"'),
    ([[None, "人名"]], r"row 1: entity \[null, \"人名\"\]: the entity must be a non-empty string"),
    ('[["罗佳", "人名"]]', "row 1: 'entities' must be a list of entities"),
])
def test_ner_rows_that_cannot_be_read_exactly_are_refused(sandbox, ents, msg):
    row = {"text": "罗佳毕业于国家图书馆", "entities": ents}
    with pytest.raises(ConfigError, match=r"n\.jsonl: " + msg):
        _load(sandbox, "n.jsonl", json.dumps(row, ensure_ascii=False), task=NER)


def test_a_big5_file_is_told_big5_as_well_as_gbk_and_only_what_decodes(sandbox):
    big5 = "text,label\n羅佳畢業於國家圖書館,a\n".encode("big5")
    with pytest.raises(ConfigError, match=r"b\.csv: not UTF-8 at .*; it decodes as GBK/GB18030 \(simplified Chinese: "
                                          r".*\) and as Big5 \(traditional Chinese: \"羅佳畢業於國家圖書館,a\"\): set "
                                          r"data\.encoding to the one it was saved in \(gb18030 or big5\)"):
        _load(sandbox, "b.csv", big5)
    assert _load(sandbox, "b.csv", big5, encoding="big5") == [{"text": "羅佳畢業於國家圖書館", "label": "a"}]
    only_gbk = "text,label\n丂,a\n".encode("gbk")   # 0x81 is no Big5 lead byte: GBK alone is named
    with pytest.raises(ConfigError, match=r"it reads as GBK/GB18030, the Chinese Windows encoding .*set "
                                          r"data\.encoding: gbk"):
        _load(sandbox, "g.csv", only_gbk)


def test_a_key_given_twice_in_one_json_row_is_refused_with_its_line(sandbox):
    jsonl = '{"text": "x", "label": "a"}\n{"text": "y", "label": "朋友", "label": "同事"}\n'
    with pytest.raises(ConfigError, match=r"d\.jsonl:2: key 'label' is given twice in one object \(JSON would keep "
                                          r"the last\); keep one"):
        _load(sandbox, "d.jsonl", jsonl)
    pretty = '[\n {"text": "x", "label": "a"},\n {"text": "y",\n  "entities": [],\n  "text": "z", "label": "b"}\n]'
    with pytest.raises(ConfigError, match=r"d\.json:3: key 'text' is given twice in the object that starts on this "
                                          r"line"):
        _load(sandbox, "d.json", pretty)
    assert _load(sandbox, "d.json", '[{"text": "x", "label": "a"}]') == [{"text": "x", "label": "a"}]


def test_a_class_label_column_of_a_saved_dataset_reads_as_its_names(sandbox):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["good", "bad", "fine"], "label": [1, 0, 1]})
    ds.cast_column("label", datasets.ClassLabel(names=["negative", "positive"])).save_to_disk(sandbox / "data" / "cl")
    task = {"type": "text_classification", "labels": ["negative", "positive"], "prompt": "{text}"}
    cfg = _cfg(sandbox, task=task, data={"source": "data/cl", "test_size": 1})
    from lorasweep.data.splits import load_examples
    assert load_examples(cfg, cfg.data.source) == [{"text": "good", "label": "positive"},
                                                   {"text": "bad", "label": "negative"},
                                                   {"text": "fine", "label": "positive"}]
    ds = datasets.Dataset.from_dict({"text": ["t"], "label": [-1]})   # -1: datasets' "no label"
    ds.cast_column("label", datasets.ClassLabel(names=["negative", "positive"])).save_to_disk(sandbox / "data" / "nl")
    with pytest.raises(ConfigError, match="column 'label', has null: fill it in"):
        load_examples(cfg, "data/nl")


@pytest.mark.parametrize("name, text, expect", [
    ("d.jsonl", '{"text": "a", "label": "a"},\n{"text": "b", "label": "b"},\n',
     r"d.jsonl:1: not valid JSON: Extra data \(column 28\); a JSONL line is one object with no comma after it"),
    ("d.json", '{"text": "a", "label": "a"}\n{"text": "b", "label": "b"}\n',
     r"d.json:2: not valid JSON: Extra data \(column 1\); it looks like one object per line: name the file .jsonl"),
    ("d.json", '[{"text": "a", "label": "a"},\n {"text": "b", "label": "b"},\n]\n',
     r"d.json:3: not valid JSON: .* a comma before the closing \] is not allowed in JSON \(remove it\)"),
    ("d.json", '[{"text": "a", "label": }]', r"d.json:1: not valid JSON: Expecting value \(column 25\)$"),
    ("d.jsonl", "", r"d.jsonl: no examples in the file \(it is empty, or holds only a header or \[\]\)"),
    ("d.json", "[]", r"d.json: no examples in the file"),
    ("d.csv", "text,label\n", r"d.csv: no examples in the file"),
])
def test_common_json_mistakes_and_empty_files_say_what_to_change(sandbox, name, text, expect):
    (sandbox / "data" / name).write_text(text, encoding="utf-8")
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml",
                                       task={"type": "text_classification", "labels": ["a", "b"], "prompt": "{text}"},
                                       data={"source": f"data/{name}", "test_size": 1}))
    with pytest.raises(ConfigError, match=expect):
        load_examples(cfg, cfg.data.source)


def test_reading_the_test_set_never_writes_data_files(sandbox):
    from lorasweep.data.splits import load_test

    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    before = sorted(p.name for p in (sandbox / "data").rglob("*"))
    test = load_test(cfg)                                          # never prepared: made in memory
    assert sorted(p.name for p in (sandbox / "data").rglob("*")) == before
    assert not (sandbox / "dataset_info.json").exists()
    assert test == prepare_data(cfg).test == load_test(cfg)        # the same examples once written


def test_one_read_of_the_data_and_one_split_per_command(sandbox, monkeypatch):
    # check's data findings, prepare (train.sh), the test set (eval) and the baselines'
    # splits all ask for the data: the file is read once and split once
    import lorasweep.data.splits as splits_mod
    from lorasweep.check.check import data_findings

    rows = demo_data.generate(300, seed=0)
    src = sandbox / "data" / "people.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml",
                                       data={"source": str(src), "test_size": 30}))
    reads, splits = [], []
    real_read, real_split = splits_mod._read_records, splits_mod._make_splits
    monkeypatch.setattr(splits_mod, "_read_records", lambda *a, **k: reads.append(a[0]) or real_read(*a, **k))
    monkeypatch.setattr(splits_mod, "_make_splits", lambda c: splits.append(1) or real_split(c))
    assert data_findings(cfg)[0] == []
    prepare_data(cfg)
    make_splits(cfg)
    splits_mod.load_split(cfg, "test")
    assert (len(reads), len(splits)) == (1, 1)
    # a changed file is read again
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:250]) + "\n", encoding="utf-8")
    assert len(make_splits(cfg).pool) == 250 - 30 and (len(reads), len(splits)) == (2, 2)
