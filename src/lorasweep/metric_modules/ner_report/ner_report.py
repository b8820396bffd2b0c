"""An `evaluate` metric module, loaded from this folder (no hub access):
entity-level scores for NER as generation, on exact (entity, type) pairs.

Each prediction/reference is one example's entities, encoded as a list of
"entity\\ttype" strings. Micro precision/recall/F1 count pairs over the whole
test set; per type the same, restricted to that type; macro F1 averages the
types; exact_match is the share of examples whose entity set is right.
"""
import datasets
import evaluate

_DESCRIPTION = "Entity-level micro/per-type precision, recall and F1 on exact (entity, type) pairs."
_KWARGS = """
predictions: list of list of str, "entity\\ttype" per predicted entity
references: list of list of str, "entity\\ttype" per gold entity
types: list of str, the entity types, in display order
"""


def _prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


class NerReport(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                        "references": datasets.Sequence(datasets.Value("string"))}))

    def _compute(self, predictions, references, types=None):
        counts = {}
        exact = 0
        for pred, gold in zip(predictions, references, strict=False):
            p, g = set(pred), set(gold)
            exact += p == g
            for item, kind in [(x, "tp") for x in p & g] + [(x, "fp") for x in p - g] + [(x, "fn") for x in g - p]:
                typ = item.rsplit("\t", 1)[-1]
                counts.setdefault(typ, {"tp": 0, "fp": 0, "fn": 0})[kind] += 1
        types = list(types or sorted(counts))
        tot = {k: sum(c[k] for c in counts.values()) for k in ("tp", "fp", "fn")}
        p, r, f = _prf(tot["tp"], tot["fp"], tot["fn"])
        per_type = {}
        for t in types:
            c = counts.get(t, {"tp": 0, "fp": 0, "fn": 0})
            tp_, rp_, fp_ = _prf(c["tp"], c["fp"], c["fn"])
            per_type[t] = {"precision": tp_, "recall": rp_, "f1": fp_, "support": c["tp"] + c["fn"]}
        seen = [t for t in types if per_type[t]["support"] or counts.get(t, {}).get("fp")]
        n = len(references)
        return {"n": n, "precision_micro": p, "recall_micro": r, "f1_micro": f,
                "f1_macro": sum(per_type[t]["f1"] for t in seen) / len(seen) if seen else 0.0,
                "exact_match": exact / n if n else 0.0, "accuracy": exact / n if n else 0.0,
                "per_type": per_type, "tp": tot["tp"], "fp": tot["fp"], "fn": tot["fn"]}
