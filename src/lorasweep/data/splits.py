"""Data: load the user's examples, hold out a fixed test set, and cut nested,
stratified training subsets per seed; write them as Alpaca files and register
them in the top-level dataset_info.json that LLaMA-Factory reads.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import demo_data
from ..infra.atomic import atomic_write_text
from ..config import ConfigError, ExperimentConfig
from ..tasks.ner_format import abridged
from ..infra.paths import data_dir, dataset_info, repo_root, test_file, val_file
from ..plan import train_runs
from ..tasks.prompts import render_prompt
from ..tasks import get_task

log = logging.getLogger("lorasweep.splits")   # its name before the move into folders: log lines unchanged

GENERATORS = {"people_relations": demo_data.generate, "patents": demo_data.generate_patents,
              "ner": demo_data.generate_ner}


def _label(ex: dict) -> str:
    return ex["label"]


@dataclass(frozen=True)
class Splits:
    pool: list[dict[str, str]]   # every example that may be trained on
    test: list[dict[str, str]]   # the fixed test set
    val: list[dict[str, str]] = field(default_factory=list)   # the validation set (data.val_size), or none
    stratum: Callable[[dict], str] = field(default=_label, repr=False, compare=False)  # Task.stratum


def _read_saved_dataset(path: Path, split: str | None, default_split: str) -> list[dict]:
    """A Hugging Face `datasets` folder written by save_to_disk: a Dataset, or
    a DatasetDict whose split is named after a colon (default: train for the
    source, test for the test file)."""
    from datasets import ClassLabel, Dataset, DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"{path}: a folder, but not one written by datasets' save_to_disk ({e})") from None
    if isinstance(ds, DatasetDict):
        name = split or default_split
        if name not in ds:
            raise ConfigError(f"{path}: no split '{name}' (it has {sorted(ds)}); name one as {path}:<split>")
        ds = ds[name]
    elif split:
        raise ConfigError(f"{path}: a single Dataset has no splits; drop ':{split}'")
    assert isinstance(ds, Dataset)
    rows = ds.to_list()
    # a ClassLabel column holds ints; the labels are its names (-1 is datasets' "no label": left empty)
    for col, feature in ds.features.items():
        if isinstance(feature, ClassLabel):
            for row in rows:
                v = row[col]
                row[col] = feature.names[v] if isinstance(v, int) and 0 <= v < len(feature.names) else None
    return rows


_TEXT_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv")
_SEPARATORS = ",;\t|"   # what sniffing chooses among
_SNIFF_CHARS = 16384    # how much of a CSV file sniffing looks at


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _decode(path: Path, raw: bytes, encoding: str | None) -> str:
    """The file's text in data.encoding, else UTF-8 (a BOM allowed). Never a
    guess: a file that is not UTF-8 is refused, saying which encoding it
    might be, since reading it in the wrong one would change every text."""
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise ConfigError(f"data.encoding: unknown encoding {encoding!r}; use a name such as utf-8, gbk, "
                              "gb18030, big5 or utf-16") from None
        codec = "utf-8-sig" if codec == "utf-8" else codec   # a BOM is not part of the first column's name
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not {encoding} (data.encoding): byte 0x{raw[e.start]:02x} at offset "
                              f"{e.start} (line {_line_of(raw, e.start)}) is not valid in it; set data.encoding "
                              "to the encoding the file was saved in") from None
        except LookupError:   # a codec of bytes to bytes, such as base64
            raise ConfigError(f"data.encoding: {encoding!r} is not a text encoding; use a name such as utf-8, "
                              "gbk, gb18030, big5 or utf-16") from None
        # Real GBK (or other) text is hardly ever also valid UTF-8: when it is, the setting is likely a mistake.
        if codec != "utf-8-sig" and not raw.isascii() and _decodes(raw, "utf-8-sig"):
            log.warning("%s: read as %s (data.encoding), though it is valid UTF-8; if its texts look garbled, "
                        "drop data.encoding", path, encoding)
        return text
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = e.start
    where = f"byte offset {bad} (line {_line_of(raw, bad)}: 0x{raw[bad]:02x})"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(f"{path}: not UTF-8 but UTF-16 (it starts with a UTF-16 byte order mark); "
                          "set data.encoding: utf-16") from None
    # Chinese bytes often decode as both GB18030 and Big5, one of them into garbage: name each
    # that decodes, with the offending line as it reads there, so the user can tell which is right.
    gb = "gbk" if _decodes(raw, "gbk") else "gb18030" if _decodes(raw, "gb18030") else None
    b5 = "big5" if _decodes(raw, "big5") else "cp950" if _decodes(raw, "cp950") else None   # cp950: Windows' Big5
    if not (gb or b5):
        raise ConfigError(f"{path}: not UTF-8 at {where}; set data.encoding to the encoding the file was saved in "
                          "(e.g. gbk, big5, cp1252)") from None
    start = raw.rfind(b"\n", 0, bad) + 1
    end = raw.find(b"\n", bad)
    line = raw[start:end if end >= 0 else len(raw)]
    sample = {c: abridged(line.decode(c).strip(), 40) for c in (gb, b5) if c}
    if gb and b5:
        raise ConfigError(f"{path}: not UTF-8 at {where}; it decodes as GBK/GB18030 (simplified Chinese: "
                          f"{sample[gb]}) and as Big5 (traditional Chinese: {sample[b5]}): set data.encoding to the "
                          f"one it was saved in ({gb} or {b5})")
    if b5:
        raise ConfigError(f"{path}: not UTF-8 at {where}; it reads as Big5, the traditional Chinese encoding "
                          f"({sample[b5]}): if that is right, set data.encoding: {b5}")
    name = "gbk (or gb18030)" if gb == "gbk" else "gb18030"
    raise ConfigError(f"{path}: not UTF-8 at {where}; it reads as GBK/GB18030, the Chinese Windows encoding "
                      f"({sample[gb]}): if that is right, set data.encoding: {name}")


def _decodes(raw: bytes, codec: str) -> bool:
    try:
        raw.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _csv_sep(path: Path, text: str, sep: str | None) -> str:
    """data.sep, else the separator that splits the first lines into equal rows
    of 2+ fields: the suffix's own (, or tab) when it does, else the sniffed one."""
    if sep is not None:
        sep = "\t" if sep == "\\t" else sep   # '\t' in single quotes in YAML is a backslash and a t
        if len(sep) != 1 or sep in "\"\r\n":
            raise ConfigError(f"data.sep: {sep!r} cannot separate CSV fields; give one character such as "
                              "',', ';', '|' or \"\\t\" (double quotes in YAML) for a tab")
        return sep
    default = "\t" if path.suffix.lower() == ".tsv" else ","
    sample, cut = text[:_SNIFF_CHARS], len(text) > _SNIFF_CHARS
    if cut:
        sample = sample[:sample.rfind("\n") + 1] or sample
    if _splits_evenly(sample, default, cut):
        return default
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=_SEPARATORS).delimiter
    except csv.Error:
        return default
    return sniffed if _splits_evenly(sample, sniffed, cut) else default


def _splits_evenly(sample: str, sep: str, cut: bool) -> bool:
    try:
        rows = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=sep) if r]
    except csv.Error:
        return False
    if cut and len(rows) > 1:
        rows = rows[:-1]   # may end inside a quoted field
    return bool(rows) and len(rows[0]) >= 2 and all(len(r) == len(rows[0]) for r in rows)


def _read_csv(path: Path, text: str, sep: str | None) -> list[dict]:
    # The text goes to the csv module whole (newline=""): a quoted field may
    # hold line breaks, which splitting into lines first would lose.
    sep = _csv_sep(path, text, sep)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=sep)
    rows, ragged, first = [], 0, ""
    try:
        for row in reader:
            rows.append(row)
            # DictReader files extra fields under the key None and fills missing ones with None.
            if None in row or None in row.values():
                ragged += 1
                if not first:
                    n = len(reader.fieldnames or ()) + len(row.get(None) or ()) - list(row.values()).count(None)
                    first = f"row {len(rows)} (line {reader.line_num}), has {n}"
    except csv.Error as e:
        raise ConfigError(f"{path}:{reader.line_num}: not readable as CSV ({e})") from None
    if ragged:
        raise ConfigError(f"{path}: {ragged} row(s) have another number of fields than the header's "
                          f"{len(reader.fieldnames or ())} (separator {sep!r}); the first, {first}; quote fields "
                          f"that contain {sep!r}, or set data.sep if the file uses another separator")
    return rows


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple]) -> dict:
    """json's object_pairs_hook: a dict, refusing a key given twice (json.loads keeps the last, silently)."""
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return d


def _duplicate_key_line(text: str) -> int:
    """The line where the first object with a key given twice starts: json's pure-Python
    parser, which knows positions, run again only on such a file."""
    from json.decoder import JSONObject
    from json.scanner import py_make_scanner

    dec = json.JSONDecoder(object_pairs_hook=_unique_keys)
    at: list[int] = []

    def parse_object(s_and_end, *args):
        try:
            return JSONObject(s_and_end, *args)
        except _DuplicateKey:
            at.append(s_and_end[1])   # the innermost object's, first
            raise

    dec.parse_object = parse_object
    dec.scan_once = py_make_scanner(dec)
    try:
        dec.decode(text)
    except _DuplicateKey:
        pass
    return text.count("\n", 0, at[0]) + 1 if at else 1


def _read_records(path: Path, sep: str | None = None, encoding: str | None = None) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
            raise ConfigError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
    if suffix not in _TEXT_SUFFIXES:
        raise ConfigError(f"{path}: unsupported data format '{suffix}' (use .json, .jsonl, .csv, .tsv, .parquet or a "
                          "datasets save_to_disk folder)")
    text = _decode(path, path.read_bytes(), encoding)
    if suffix == ".jsonl":
        rows = []
        # Lines end at "\n" only: str.splitlines() also breaks at U+2028,
        # U+0085 and others, which JSON allows unescaped inside a string.
        for i, line in enumerate(text.split("\n"), 1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line, object_pairs_hook=_unique_keys))
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{i}: not valid JSON: {e.msg} (column {e.colno}){_json_hint(e, line)}") \
                    from None
            except _DuplicateKey as e:
                raise ConfigError(f"{path}:{i}: key {e.args[0]!r} is given twice in one object (JSON would keep "
                                  "the last); keep one") from None
        return rows
    if suffix == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            hint = ("; it looks like one object per line: name the file .jsonl" if e.msg == "Extra data" else
                    _json_hint(e, text.splitlines()[e.lineno - 1] if e.lineno <= len(text.splitlines()) else ""))
            raise ConfigError(f"{path}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno}){hint}") from None
        except _DuplicateKey as e:
            raise ConfigError(f"{path}:{_duplicate_key_line(text)}: key {e.args[0]!r} is given twice in the object "
                              "that starts on this line (JSON would keep the last); keep one") from None
        if not isinstance(data, list):
            raise ConfigError(f"{path}: expected a JSON list of objects")
        return data
    return _read_csv(path, text, sep)


def _cell_fix(value, int_ok: bool) -> str | None:
    """None when a cell can be used as the text it is; else what to write instead.
    str() of anything else would change it silently: null becomes "None", a
    token list "['a', 'b']", true "True". An int reads back as the digits the
    file has, so it passes where int_ok (texts and labels such as 0/1); a
    float does not, as str() may not be how the file wrote it (1.10 -> "1.1")."""
    if isinstance(value, str) or (int_ok and isinstance(value, int) and not isinstance(value, bool)):
        return None
    if value is None or (isinstance(value, float) and value != value):   # null, or pandas' NaN for a missing cell
        return "fill it in, or leave the row out"
    if isinstance(value, bool):
        return f'write it as the string "{str(value).lower()}"'
    if isinstance(value, (list, tuple)):
        tokens = all(isinstance(v, str) for v in value)
        return "join the tokens into one string" if tokens else "write one string instead of a list"
    if isinstance(value, dict):
        return "write the string itself instead of an object"
    return "write it as a string, in quotes"


def _normalise_rows(cfg: ExperimentConfig, rows: list[dict], source: str) -> list[dict[str, str]]:
    d = cfg.data
    task = get_task(cfg.task.type)
    need = task.columns(d)
    bad_cells, first_bad = 0, ""
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ConfigError(f"{source}: row {i} is not an object")
        missing = [c for c in need if c not in row]
        if missing:
            raise ConfigError(f"{source}: row {i} lacks column(s) {missing}; "
                              f"set data.text_column/label_column/entity1_column/entity2_column "
                              f"(row has {sorted(map(str, row))})")
        fixes = [(c, fix) for c in need
                 if (fix := _cell_fix(row[c], int_ok=c in (d.text_column, d.label_column))) is not None]
        if fixes:
            bad_cells += 1
            if not first_bad:
                c, fix = fixes[0]
                first_bad = f"row {i}, column '{c}', has {abridged(row[c], 60)}: {fix}"
    if bad_cells:
        raise ConfigError(f"{source}: {bad_cells} row(s) have a cell that is not text; the first, {first_bad}")
    out = [task.read_row(cfg, row, f"{source}: row {i}") for i, row in enumerate(rows, 1)]
    if not task.closed_labels:
        return out
    labels = set(cfg.task.labels)
    bad = Counter(ex["label"] for ex in out if ex["label"] not in labels)
    if bad:
        shown = ", ".join(f"{k!r} x{v}" for k, v in bad.most_common(5))
        raise ConfigError(f"{source}: {sum(bad.values())} row(s) have labels not in task.labels: {shown}; "
                          "add them to task.labels or fix the data")
    return out


def _json_hint(e: json.JSONDecodeError, line: str) -> str:
    """What usually causes a JSON error users meet: a comma after the last item or object."""
    if e.msg == "Extra data" and line.rstrip().endswith(","):
        return "; a JSONL line is one object with no comma after it"
    before, at = e.doc[:e.pos].rstrip(), e.doc[e.pos:e.pos + 1]
    if before.endswith(",") and at in ("]", "}"):
        return f"; a comma before the closing {at} is not allowed in JSON (remove it)"
    return ""


# One read of the data and one split per command: check, prepare, lengths and the
# baselines all ask for them; the answers are kept here for the process's life, keyed
# on the data and task settings and each data file's content (a digest: a file changed
# in between is read again; hashing costs a fraction of parsing).
_MEMO: dict[tuple, object] = {}


def _fingerprint(path: Path) -> tuple:
    if path.is_file():
        return (str(path), hashlib.sha1(path.read_bytes()).hexdigest())
    if path.is_dir():   # a save_to_disk folder: its files' names, sizes and times
        return (str(path), tuple(sorted((str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns)
                                        for f in path.rglob("*") if f.is_file())))
    return (str(path), None)


def _memo_key(cfg: ExperimentConfig, *what) -> tuple:
    files = tuple(_fingerprint(_locate(src)[0]) for src in (cfg.data.source, cfg.data.test_file)
                  if src and not src.startswith("generate:"))
    return (cfg.data.model_dump_json(), cfg.task.model_dump_json(), files, *what)


def _remembered(key: tuple, make):
    if key not in _MEMO:
        if len(_MEMO) > 16:
            _MEMO.clear()
        _MEMO[key] = make()   # (an error is raised, not kept: the next call tries again)
    return _MEMO[key]


def load_examples(cfg: ExperimentConfig, source: str, split: str = "train") -> list[dict[str, str]]:
    """Examples from `source`: a generator, a file (.json, .jsonl, .csv, .tsv,
    .parquet) or a datasets save_to_disk folder (`folder:split` for a split of
    a DatasetDict, else `split`), with the configured columns mapped to
    text/label/entities. Read once per process (each caller gets its own copies)."""
    rows = _remembered(_memo_key(cfg, "examples", source, split), lambda: _load_examples(cfg, source, split))
    return [dict(ex) for ex in rows]


def _load_examples(cfg: ExperimentConfig, source: str, split: str) -> list[dict[str, str]]:
    if source.startswith("generate:"):
        gen = source.split(":", 1)[1]
        if gen not in GENERATORS:
            raise ConfigError(f"data.source: unknown generator '{gen}' (available: {', '.join(GENERATORS)})")
        rows = GENERATORS[gen](cfg.data.generate_size, seed=cfg.data.split_seed)
        return _normalise_rows(cfg, rows, source)
    path, named = _locate(source)
    if path.is_dir():
        return _normalise_rows(cfg, _read_saved_dataset(path, named, split), f"{path}:{named or split}")
    if not path.is_file():
        raise ConfigError(f"data.source: file not found: {path}")
    rows = _read_records(path, cfg.data.sep, cfg.data.encoding)
    if not rows:
        raise ConfigError(f"{path}: no examples in the file (it is empty, or holds only a header or []); "
                          "point data.source at the file with your data")
    return _normalise_rows(cfg, rows, str(path))


def _locate(source: str) -> tuple[Path, str | None]:
    """The path of a data source, and the split named after a colon (folder:split)."""
    def resolve(s: str) -> Path:
        p = Path(s).expanduser()
        return p if p.is_absolute() else repo_root() / p
    path = resolve(source)
    if not path.exists() and ":" in source:
        head, split = source.rsplit(":", 1)
        if resolve(head).is_dir():
            return resolve(head), split
    return path, None


def stratified_order(examples: list[dict[str, str]], seed: int,
                     stratum: Callable[[dict], str] = _label) -> list[dict[str, str]]:
    """Order examples so that every prefix is (close to) stratified by label
    (by `stratum`: the task's, Task.stratum; ner's is the set of entity types).

    Within each class the items are shuffled and item i of n gets the position
    (i + u) / n with a random offset u; sorting all items by position spreads
    each class evenly along the list. Prefixes are then nested subsets.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    for ex in examples:
        by_label[stratum(ex)].append(ex)
    keyed = []
    for label in sorted(by_label):
        items = by_label[label][:]
        rng.shuffle(items)
        u = rng.random()
        n = len(items)
        keyed += [((i + u) / n, rng.random(), ex) for i, ex in enumerate(items)]
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [ex for _, _, ex in keyed]


def split_errors(cfg: ExperimentConfig, n_examples: int, n_overlap: int = 0) -> list[str]:
    """What the held-out sets leave for training, as errors (make_splits raises
    the first, check lists them all): `n_examples` distinct examples in the
    source, `n_overlap` of them in a given test file (left out of training)."""
    d, errors = cfg.data, []
    if d.test_file:
        rest, after = n_examples - n_overlap, "the test file's"
    else:
        rest, after = n_examples - d.test_size, f"the {d.test_size} test"
        if rest <= 0:
            errors.append(f"data.test_size={d.test_size} leaves nothing to train on ({n_examples} distinct "
                          "examples)")
    if d.val_size and rest > 0 and d.val_size >= rest:
        errors.append(f"data.val_size={d.val_size} leaves nothing to train on ({n_examples} distinct examples, "
                      f"{n_examples - rest} held out for the test set); lower it or bring more data")
    pool = rest - d.val_size
    too_big = [s for s in cfg.train_sizes if s > pool]
    if too_big:
        held = f"{after} and {d.val_size} validation examples" if d.val_size else "the test set"
        errors.append(f"train_sizes: {too_big} larger than the {max(pool, 0)} examples left for training after "
                      f"{held}; lower them or bring more data")
    return errors


def make_splits(cfg: ExperimentConfig) -> Splits:
    """Test set, validation set (data.val_size) and training pool, disjoint.
    Duplicates are kept once (first occurrence); with a given test file, its
    examples are left out of the pool. The validation set is held out once
    from what the test set leaves, stratified, by the split seed alone: every
    seed's training subsets are drawn from the rest. Made once per process."""
    made = _remembered(_memo_key(cfg, "splits"), lambda: _make_splits(cfg))
    return Splits(pool=list(made.pool), test=list(made.test), val=list(made.val), stratum=made.stratum)


def _make_splits(cfg: ExperimentConfig) -> Splits:
    stratum = get_task(cfg.task.type).stratum
    examples = dedupe(load_examples(cfg, cfg.data.source))[0]
    v = cfg.data.val_size
    if cfg.data.test_file:
        test = dedupe(load_examples(cfg, cfg.data.test_file, split="test"))[0]
        test_texts = {example_key(ex) for ex in test}
        pool = [ex for ex in examples if example_key(ex) not in test_texts]
        errors = split_errors(cfg, len(examples), len(examples) - len(pool))
        val = stratified_order(pool, cfg.data.split_seed, stratum)[:v] if v else []
        held = {example_key(ex) for ex in val}
        pool = [ex for ex in pool if example_key(ex) not in held]   # the pool keeps its order
    else:
        errors = split_errors(cfg, len(examples))
        # one stratified order: the test set, then the validation set, then the pool (each window of the
        # order is close to stratified, e.g. test 0..199, validation 200..299, pool 300..)
        ordered = stratified_order(examples, cfg.data.split_seed, stratum)
        t = cfg.data.test_size
        test, val, pool = ordered[:t], ordered[t:t + v], ordered[t + v:]
    if errors:
        raise ConfigError(errors[0])
    return Splits(pool=pool, test=test, val=val, stratum=stratum)


def example_key(ex: dict[str, str]) -> tuple:
    """What makes two examples the same: text and entity pair (the label is what is learnt)."""
    return (ex["text"], ex.get("entity1", ""), ex.get("entity2", ""))


def dedupe(examples: list[dict[str, str]]) -> tuple[list[dict], list[dict], int]:
    """Each example once, at its first occurrence: (kept, dropped, how many of
    the dropped carry another label than the kept one). Splits and check use
    it, so duplicates never land on both sides of the split."""
    first: dict[tuple, dict] = {}
    dropped = []
    for ex in examples:
        k = example_key(ex)
        if k in first:
            dropped.append(ex)
        else:
            first[k] = ex
    conflicting = sum(1 for ex in dropped if ex["label"] != first[example_key(ex)]["label"])
    return list(first.values()), dropped, conflicting


def train_subset(splits: Splits, size: int, seed: int) -> list[dict[str, str]]:
    """The first `size` examples of the seed's stratified order (nested across sizes)."""
    return stratified_order(splits.pool, seed, splits.stratum)[:size]


def to_alpaca(cfg: ExperimentConfig, examples: list[dict], prompt: str | None = None) -> list[dict[str, str]]:
    # The whole prompt goes into `instruction` with an empty `input`, so the
    # user turn LLaMA-Factory builds is exactly the text the scorer sends.
    return [{"instruction": render_prompt(cfg.task, ex, prompt), "input": "", "output": ex["label"]}
            for ex in examples]


def _write_json(path: Path, obj) -> None:
    """Write only when the content changes: an untouched file keeps its mtime,
    so LLaMA-Factory's dataset cache (keyed on it) stays valid between runs."""
    text = json.dumps(obj, ensure_ascii=False, indent=1) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)


def prepare_data(cfg: ExperimentConfig) -> Splits:
    """Write test + train subsets under data/<experiment>/ and register them."""
    splits = make_splits(cfg)
    data_dir(cfg.name).mkdir(parents=True, exist_ok=True)
    _write_json(test_file(cfg.name), splits.test)
    if splits.val:
        _write_json(val_file(cfg.name), splits.val)
    root = repo_root()
    orders = {seed: stratified_order(splits.pool, seed, splits.stratum) for seed in cfg.seeds}
    entries = {}
    for run in train_runs(cfg):   # one file per prompt x size x seed, shared by the models
        if run.dataset in entries:
            continue
        _write_json(run.train_file, to_alpaca(cfg, orders[run.seed][:run.size], run.prompt))
        entries[run.dataset] = {"file_name": str(run.train_file.relative_to(root)),
                                "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    register_datasets(dataset_info(), entries)
    counts = Counter(splits.stratum(ex) for ex in splits.test)
    val = f", {len(splits.val)} validation examples" if splits.val else ""
    log.info("data: %d test examples (%d strata)%s, %d in the training pool, %d train files in %s",
             len(splits.test), len(counts), val, len(splits.pool), len(entries), data_dir(cfg.name))
    return splits


def register_datasets(path: Path, entries: dict[str, dict]) -> None:
    """Merge entries into LLaMA-Factory's dataset registry, keeping the others."""
    info = {}
    if path.is_file():
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e.msg}); fix or delete it") from None
    info.update(entries)
    _write_json(path, dict(sorted(info.items())))


def load_test(cfg: ExperimentConfig) -> list[dict[str, str]]:
    return load_split(cfg, "test")


def load_split(cfg: ExperimentConfig, split: str) -> list[dict[str, str]]:
    """The test or the validation ("val") examples, as prepare_data wrote them; made in
    memory, the same, when it has not (reading never writes: a report or a notebook on an
    experiment that was never trained leaves data/ as it is)."""
    path = test_file(cfg.name) if split == "test" else val_file(cfg.name)
    if not path.is_file():
        splits = make_splits(cfg)
        return splits.test if split == "test" else splits.val
    return json.loads(path.read_text(encoding="utf-8"))
