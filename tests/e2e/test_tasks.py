"""End to end for the other task families on the embedded model: text
classification with two prompts scored in both decoding modes, and NER as
generation. Real llamafactory-cli, vLLM server, LangChain client."""
import json
import os
import pickle
import subprocess
import time

import pytest

from conftest import ROOT, write_experiment
from lorasweep import demo_data

pytestmark = pytest.mark.e2e
TEST_SIZE = 20
TRAIN_ARGS = {"num_train_epochs": 1, "learning_rate": 1.0e-3, "cutoff_len": 128}


def _run(root, exp, *stages):
    env = {**os.environ, "LORASWEEP_ROOT": str(root)}
    for stage in stages:
        t0 = time.time()
        p = subprocess.run(["bash", str(ROOT / "shell" / f"{stage}.sh"), str(exp)], env=env,
                           capture_output=True, text=True, timeout=1500)
        print(f"--- {stage} ({time.time() - t0:.0f} s, exit {p.returncode})\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
        assert p.returncode == 0, p.stderr[-3000:]


def test_text_classification_two_prompts_free_and_constrained(tmp_path):
    (tmp_path / "experiments").mkdir()
    exp = write_experiment(
        tmp_path / "experiments" / "pat.yaml",
        task={"type": "text_classification", "labels": demo_data.PATENT_LABELS, "label_separator": " | ",
              "prompt": {"terse": "Patent class ({labels})?\n{text}\nClass:",
                         "instructed": "Answer with one category: {labels}\nAbstract: {text}\nCategory:"}},
        data={"source": "generate:patents", "generate_size": 200, "test_size": TEST_SIZE},
        models=[{"name": "gemma-3-270m", "path": "embedded:gemma-3-270m", "template": "gemma"}],
        train_sizes=[16], seeds=[1], train={"args": TRAIN_ARGS},
        eval={"decoding": ["free", "constrained"], "concurrency": 8, "max_model_len": 512})
    _run(tmp_path, exp, "train", "eval")
    with open(tmp_path / "experiments" / "pat" / "results.pkl", "rb") as f:
        df = pickle.load(f)
    llm = df[df.model == "gemma-3-270m"]
    # 2 prompts x (base + 1 adapter) x 2 decodings, plus the tf-idf baseline.
    assert len(llm) == 8 and set(llm.prompt) == {"terse", "instructed"} and set(llm.decoding) == {"free", "constrained"}
    assert (llm[llm.decoding == "constrained"].invalid == 0).all()   # forced into the label list
    assert set(df[df.model == "baseline-tfidf-logreg"]["size"]) == {16}
    folder = tmp_path / "experiments" / "pat" / "runs" / "gemma-3-270m" / "terse" / "n16" / "seed1"
    lines = [json.loads(x) for x in (folder / "predictions.constrained.jsonl").read_text().splitlines()]
    assert len(lines) == TEST_SIZE and all(x["prediction"] in demo_data.PATENT_LABELS for x in lines)


def test_ner_as_generation(tmp_path):
    (tmp_path / "experiments").mkdir()
    exp = write_experiment(
        tmp_path / "experiments" / "ner.yaml",
        task={"type": "ner", "labels": demo_data.NER_TYPES,
              "prompt": "找出文本中的人名、地名、机构名，每行一个“实体_类型”，没有则回答“没有”。\n文本：{text}\n答案："},
        data={"source": "generate:ner", "generate_size": 200, "test_size": TEST_SIZE},
        models=[{"name": "gemma-3-270m", "path": "embedded:gemma-3-270m", "template": "gemma"}],
        train_sizes=[32], seeds=[1], train={"args": TRAIN_ARGS},
        eval={"concurrency": 8, "max_model_len": 512, "max_tokens": 32})
    _run(tmp_path, exp, "train", "eval")
    with open(tmp_path / "experiments" / "ner" / "results.pkl", "rb") as f:
        df = pickle.load(f)
    assert sorted(df["size"]) == [0, 32] and (df.task == "ner").all()
    folder = tmp_path / "experiments" / "ner" / "runs" / "gemma-3-270m" / "n32" / "seed1"
    m = json.loads((folder / "metrics.free.json").read_text())["metrics"]
    assert m["n"] == TEST_SIZE and set(m["per_type"]) == set(demo_data.NER_TYPES)
    assert {"f1_micro", "precision_micro", "recall_micro", "exact_match", "invalid", "invalid_lines"} <= set(m)
    assert df.loc[df["size"] == 32, "score"].item() == m["f1_micro"]
