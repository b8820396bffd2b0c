"""End to end for the other task families on the embedded model: text
classification with two prompts scored in both decoding modes, and NER as
generation. Real llamafactory-cli, vLLM server, LangChain client."""
import json
import pickle

import pytest

from conftest import run_stages, write_experiment
from lorasweep.data import demo_data

pytestmark = pytest.mark.e2e
TEST_SIZE = 20
TRAIN_ARGS = {"num_train_epochs": 1, "learning_rate": 1.0e-3, "cutoff_len": 128}


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
        # Both decoding modes with LoRA adapters over two client processes at once: the case
        # that stopped a GPU server once (docs/gpu.md), here on the CPU.
        eval={"decoding": ["free", "constrained"], "concurrency": 8, "max_model_len": 512, "client_processes": 2})
    run_stages(tmp_path, exp, "train", "eval")
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
    run_stages(tmp_path, exp, "train", "eval")
    with open(tmp_path / "experiments" / "ner" / "results.pkl", "rb") as f:
        df = pickle.load(f)
    assert sorted(df["size"]) == [0, 32] and (df.task == "ner").all()
    folder = tmp_path / "experiments" / "ner" / "runs" / "gemma-3-270m" / "n32" / "seed1"
    m = json.loads((folder / "metrics.free.json").read_text())["metrics"]
    assert m["n"] == TEST_SIZE and set(m["per_type"]) == set(demo_data.NER_TYPES)
    assert {"f1_micro", "precision_micro", "recall_micro", "exact_match", "invalid", "invalid_lines"} <= set(m)
    assert df.loc[df["size"] == 32, "score"].item() == m["f1_micro"]
