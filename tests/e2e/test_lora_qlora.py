"""Variants end to end on the embedded Gemma: LoRA and QLoRA (a 4-bit NF4 base
through bitsandbytes, trained on this CPU) on the same training set, served
by the real vLLM server (the CPU backend has no bitsandbytes: the QLoRA
adapter is scored on the full-precision base, and the results say so),
scored, and compared pairwise in the report. Each run trains two epochs and
keeps its adapter after the first (train.save_epochs): the kept checkpoints are
served beside the final adapters and scored, the epoch curve's points. With a
validation set (data.val_size) and eval.select: val, both checkpoints of each
run are scored on it too, the better one is recorded before the test answers
are read, and the run reports that checkpoint's test score. Beside them a full
fine-tuning variant: the whole model saved, served from a vLLM server of its
own with the same parity check, scored, then its weights deleted
(eval.delete_full_weights); save_epochs is not applied to it, so its last
epoch is its only candidate."""
import json
import os
import pickle
import subprocess
import sys

import pytest

from conftest import ROOT, run_stages, write_experiment

pytestmark = pytest.mark.e2e


def test_lora_qlora_and_full_variants_trained_served_scored_and_compared(tmp_path):
    (tmp_path / "experiments").mkdir()
    exp = write_experiment(
        tmp_path / "experiments" / "var.yaml",
        data={"source": "generate:people_relations", "generate_size": 120, "test_size": 20, "val_size": 10},
        models=[{"name": "gemma", "path": "embedded:gemma-3-270m", "template": "gemma"}],
        train_sizes=[16], seeds=[1],
        variants={"lora": {}, "qlora": {"quantization_bit": 4},
                  "full": {"finetuning_type": "full", "learning_rate": 2.0e-5}},
        train={"args": {"num_train_epochs": 2, "learning_rate": 1.0e-3, "cutoff_len": 128}, "save_epochs": [1]},
        eval={"decoding": "free", "concurrency": 8, "max_model_len": 512, "baselines": [], "select": "val",
              "delete_full_weights": True})
    train, evaluate = run_stages(tmp_path, exp, "train", "eval")
    runs = tmp_path / "experiments" / "var" / "runs" / "gemma"
    q_log = (runs / "variant-qlora" / "n16" / "seed1" / "train.log").read_text()
    assert "Quantizing model to 4 bit with bitsandbytes" in q_log
    assert "Quantizing" not in (runs / "variant-lora" / "n16" / "seed1" / "train.log").read_text()
    assert "scored on the full-precision base" in evaluate.stderr
    with open(tmp_path / "experiments" / "var" / "results.pkl", "rb") as f:
        df = pickle.load(f)
    # the adapters kept after epoch 1, served and scored beside the final ones
    kept = df[df["checkpoint"] == "e1"].set_index("variant")
    assert sorted(kept.index) == ["lora", "qlora"] and (kept["n"] == 20).all() and (kept["epochs"] == 1).all()
    assert kept.loc["qlora", "trained_base"] == "bnb-4bit"
    for v in ("lora", "qlora"):
        assert (runs / f"variant-{v}" / "n16" / "seed1" / "epoch1" / "adapter" / "adapter_model.safetensors").is_file()
        assert not list((runs / f"variant-{v}" / "n16" / "seed1" / "adapter").glob("checkpoint-*"))
    # full fine-tuning: the whole model saved (in the base's dtype), no epoch kept, served from its own
    # server under its run id with the parity check, scored, then its weights deleted
    full = runs / "variant-full" / "n16" / "seed1"
    record = json.loads((full / "train_result.json").read_text())
    # (the embedded Gemma stores bf16 weights: 270M x 2 bytes = 0.54 GB, not LLaMA-Factory's float32 1.07 GB)
    assert record["method"] == "full" and record["saved_dtype"] == "bfloat16" and record["lora_rank"] is None
    assert 500_000_000 < record["weights_bytes"] < 600_000_000 and not (full / "epoch1").exists()
    assert "save_epochs [1]: not applied to the full/freeze-tuned runs of gemma/full" in train.stderr
    assert "finetuning_type: full" in (full / "train.yaml").read_text()
    assert "serve gemma__full__n16__seed1: healthy" in evaluate.stderr
    assert (tmp_path / "experiments" / "var" / "runs" / "server_gemma__full__n16__seed1.log").is_file()
    assert evaluate.stderr.count("parity gemma: the served prompt is the trained one") == 2
    assert "gemma__full__n16__seed1: scored; its weights deleted" in evaluate.stderr
    assert not list((full / "adapter").glob("*.safetensors")) and (full / "adapter" / "config.json").is_file()
    trained = df[(df["size"] == 16) & (df["checkpoint"] == "")].set_index("variant")
    assert sorted(trained.index) == ["full", "lora", "qlora"]
    assert trained.loc["qlora", "trained_base"] == "bnb-4bit" and trained.loc["qlora", "served_base"] == "full"
    assert trained.loc["lora", "trained_base"] == trained.loc["lora", "served_base"] == "full"
    assert (trained["n"] == 20).all()
    # the validation selection: both checkpoints scored on the 10 validation examples, the better one chosen
    # (a tie: the earlier) and recorded, and its test score reported
    for v in ("lora", "qlora"):
        seed = runs / f"variant-{v}" / "n16" / "seed1"
        record = json.loads((seed / "selection.free.json").read_text())
        assert record["val_size"] == 10 and set(record["candidates"]) == {"e1", "last"}
        best = max(record["candidates"].values())
        assert record["selected"] == ("e1" if record["candidates"]["e1"] == best else "last")
        assert record["val_score"] == best
        for folder in (seed, seed / "epoch1"):
            assert len((folder / "val_predictions.free.jsonl").read_text().splitlines()) == 10
        rows = df[(df["variant"] == v) & (df["size"] == 16)]
        chosen = rows[rows["selected"] != ""]
        assert len(chosen) == 1 and chosen["selected"].iloc[0] == record["selected"]
        assert chosen["checkpoint"].iloc[0] == ("" if record["selected"] == "last" else "e1")
        assert sorted(rows["val_score"]) == sorted(record["candidates"].values())
    # the full run keeps no checkpoint: its final model is its only candidate
    record = json.loads((runs / "variant-full" / "n16" / "seed1" / "selection.free.json").read_text())
    assert set(record["candidates"]) == {"last"} and record["selected"] == "last"
    # each variant's own train.yaml and the same training file
    yamls = {v: (runs / f"variant-{v}" / "n16" / "seed1" / "train.yaml").read_text() for v in ("lora", "qlora")}
    assert "quantization_bit: 4" in yamls["qlora"] and "quantization_bit" not in yamls["lora"]
    record = json.loads((runs / "variant-qlora" / "n16" / "seed1" / "train_result.json").read_text())
    assert record["variant"] == "qlora"
    # the report compares the two variants at n=16 on the same test examples
    env = {**os.environ, "LORASWEEP_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.run([sys.executable, "-m", "lorasweep", "report", str(exp)], env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    page = (tmp_path / "experiments" / "var" / "report.html").read_text()
    assert "Which model, which variant, how many labels" in page
    assert "<h3>train size 16</h3>" in page and "gemma / lora / free" in page and "gemma / qlora / free" in page
    assert "gemma / full / free" in page
    assert "scored on the full-precision base" in page
    assert "Score against epochs" in page and "not used for selection" in page
    assert "Scores are validation-selected" in page and "the point at n=16 used 16 + 10 = 26 labels" in page
    assert "gemma / lora / free / e1" not in page          # a checkpoint is no series of its own: the choice is
