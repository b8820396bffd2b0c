"""End to end on the embedded default model, with the real parts: the shell
scripts, llamafactory-cli training two adapters, one vLLM server holding both,
the LangChain client over HTTP, evaluate metrics, pickles and the notebook.
Needs `bash shell/setup.sh` (the README test command runs it first).
"""
import json
import os
import pickle
import re
import subprocess
import time

import pytest

from conftest import ROOT, write_experiment
from lorasweep.envscripts.cpu_lora import FORKED, INSTALLED

pytestmark = pytest.mark.e2e

LABELS = ["夫妻", "父母", "兄弟姐妹", "师生", "同学", "好友", "上下级", "合作", "祖孙", "不确定"]
TEST_SIZE = 24


def _sh(script, exp, env, timeout):
    t0 = time.time()
    p = subprocess.run(["bash", str(ROOT / "shell" / script), str(exp)], env=env, capture_output=True,
                       text=True, timeout=timeout)
    print(f"--- {script} ({time.time() - t0:.0f} s, exit {p.returncode})\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}")
    return p


def _vllm_servers():
    out = subprocess.run(["pgrep", "-f", "vllm.entrypoints.openai.api_server"], capture_output=True, text=True)
    return out.stdout.split()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "experiments").mkdir()
    exp = write_experiment(
        root / "experiments" / "e2e.yaml",
        task={"type": "relation_classification", "labels": LABELS,
              "prompt": "判断句中两人的关系，从以下标签中选一个：{labels}\n句子：{text}\n人物：{entity1}、{entity2}\n关系："},
        data={"source": "generate:people_relations", "generate_size": 300, "test_size": TEST_SIZE},
        models=[{"name": "gemma-3-270m", "path": "embedded:gemma-3-270m", "template": "gemma"}],
        train_sizes=[16, 48], seeds=[1],
        train={"args": {"num_train_epochs": 1, "learning_rate": 1.0e-3, "cutoff_len": 128,
                        "per_device_train_batch_size": 8}},
        eval={"max_model_len": 512},
    )
    env = {**os.environ, "LORASWEEP_ROOT": str(root)}
    return root, exp, env


def test_train_sh_trains_every_run(sweep):
    root, exp, env = sweep
    p = _sh("train.sh", exp, env, timeout=1500)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 trained, 0 already finished, 0 failed" in p.stdout
    for size in (16, 48):
        run = root / "experiments" / "e2e" / "runs" / "gemma-3-270m" / f"n{size}" / "seed1"
        res = json.loads((run / "train_result.json").read_text())
        assert res["size"] == size and res["train_samples_per_s"] > 0
        assert (run / "adapter" / "adapter_model.safetensors").is_file()
        assert (run / "adapter" / "chat_template.jinja").is_file()
        assert "train.yaml" in os.listdir(run) and (run / "train.log").stat().st_size > 0
    # Running again skips what is finished.
    p2 = _sh("train.sh", exp, env, timeout=300)
    assert p2.returncode == 0 and "0 trained, 2 already finished" in p2.stdout


def test_eval_sh_serves_both_adapters_from_one_server_and_scores(sweep):
    root, exp, env = sweep
    assert not _vllm_servers()
    p = _sh("eval.sh", exp, env, timeout=1500)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "7 scored" in p.stdout   # base + 2 adapters + 2 tf-idf + 2 embedding baselines
    assert not _vllm_servers(), "the vLLM server must be stopped after eval"
    # One server start for both adapters.
    assert p.stderr.count("starting vLLM with 2 adapter(s)") == 1

    runs = root / "experiments" / "e2e" / "runs" / "gemma-3-270m"
    preds = {}
    for sub in ("n0/base", "n16/seed1", "n48/seed1"):
        folder = runs / sub
        lines = [json.loads(x) for x in (folder / "predictions.free.jsonl").read_text().splitlines()]
        assert [x["i"] for x in lines] == list(range(TEST_SIZE))
        m = json.loads((folder / "metrics.free.json").read_text())["metrics"]
        assert m["n"] == TEST_SIZE and 0 <= m["f1_macro"] <= 1
        assert m["invalid"] == sum(not x["valid"] for x in lines)
        assert set(m) >= {"accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_weighted",
                          "per_class", "confusion_matrix"}
        with open(folder / "result.free.pkl", "rb") as f:
            r = pickle.load(f)
        assert r.predictions == [x["prediction"] for x in lines]
        preds[sub] = [x["raw"] for x in lines]
    # Train/serve parity was checked against the live server before scoring:
    # the served prompt ids are LLaMA-Factory's, and answers stop where training ended them.
    parity = json.loads((runs / "parity.json").read_text())
    assert parity["ok"] and parity["prompt_identical"] and parity["answer_end_token"] == 106
    assert parity["served_prompt_ids"][0] == 2          # <bos> first
    assert "parity gemma-3-270m: the served prompt is the trained one" in p.stderr
    # The adapters are really applied: their answers differ from the base model's.
    # (Were lorasweep's LoRA kernels missing where the model runs, the base model's
    # answers, asked beside the adapters', would be the last adapter's.)
    assert preds["n48/seed1"] != preds["n0/base"]
    assert preds["n16/seed1"] != preds["n0/base"]
    # The server's engine process was forked from it (a faster start than vLLM's
    # spawn on a CPU) and its worker spawned (its threads bound to cores): both
    # have the kernels.
    server_log = (runs.parent / "server_gemma-3-270m.log").read_text(errors="ignore")
    engine = re.findall(r"^\(EngineCore[^)]* pid=(\d+)\)", server_log, re.M)
    worker = re.findall(r"^\((?:VllmWorker|Worker)[^)]* pid=(\d+)\)", server_log, re.M)
    assert engine and worker and f"{FORKED}: pid {engine[0]} has the kernels" in server_log
    assert f"{INSTALLED} (pid {worker[0]})" in server_log

    with open(root / "experiments" / "e2e" / "results.pkl", "rb") as f:
        df = pickle.load(f)
    llm = df[df.model == "gemma-3-270m"]
    assert sorted(llm["size"]) == [0, 16, 48]
    assert sorted(df[df.model == "baseline-tfidf-logreg"]["size"]) == [16, 48]
    assert sorted(df[df.model == "baseline-minilm-logreg"]["size"]) == [16, 48]
    assert (root / "experiments" / "e2e" / "results.csv").is_file()

    # Scoring again skips finished runs and starts no server.
    p2 = _sh("eval.sh", exp, env, timeout=300)
    assert p2.returncode == 0 and "0 scored, 7 already scored" in p2.stdout


def test_notebook_runs_headless_and_saves_figures(sweep):
    root, exp, env = sweep
    p = _sh("notebook.sh", exp, env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    figs = root / "experiments" / "e2e" / "figures"
    for name in ("learning_curve.png", "confusion_best.png", "training_loss.png"):
        assert (figs / name).stat().st_size > 5000
    nb = json.loads((root / "experiments" / "e2e" / "analysis.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
