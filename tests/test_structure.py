"""The shape of the package: every module imports on its own (no import
cycles), the scripts run by other environments import nothing from the
package, and every rule (a run-folder file name, an environment variable, a
tool) is written down in one place in src/."""
import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
PACKAGE = SRC / "lorasweep"


def _modules() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__" or "metric_modules" in parts:   # __main__ runs the CLI; metric modules load by path
            continue
        out.append(".".join(parts))
    return out


def test_every_module_imports_first_without_cycles():
    """Each module is imported first, into an interpreter holding no other
    lorasweep module, so an import cycle through it cannot hide."""
    code = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m == 'lorasweep' or m.startswith('lorasweep.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        failed.append(f'{name}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(failed)); sys.exit(1 if failed else 0)\n"
    )
    modules = _modules()
    assert len(modules) > 25
    p = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stdout + p.stderr


def _top_level_imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import at module level (not inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_other_environments_scripts_import_nothing_from_the_package():
    scripts = [p for p in (PACKAGE / "envscripts").glob("*.py") if p.name != "__init__.py"]
    assert {p.name for p in scripts} == {"cpu_lora.py", "parity_encode.py", "build_model.py", "embed_minilm.py",
                                         "fast_loss.py", "token_lengths.py", "train_args_check.py", "cast_checkpoint.py"}
    for path in scripts:
        for module, level in _top_level_imports(path):
            assert level == 0 and not module.startswith("lorasweep"), f"{path.name} imports {module!r}"
            heavy = module.split(".")[0] in ("torch", "transformers", "vllm", "llamafactory", "numpy")
            assert not heavy, f"{path.name} imports {module} at module level (keep it inside the stage)"


def test_tools_is_standard_library_only():
    """shell/common.sh and setup.sh ask it with any Python, before an environment exists (the top-level
    tools.py is the shim `python -m lorasweep.tools` runs: it imports infra/tools.py and nothing else)."""
    stdlib = sys.stdlib_module_names | {"__future__"}
    for module, level in _top_level_imports(PACKAGE / "infra" / "tools.py"):
        assert level == 0 and module.split(".")[0] in stdlib, module
    for module, level in _top_level_imports(PACKAGE / "tools.py"):
        assert (module, level) == ("infra.tools", 1) or (level == 0 and module.split(".")[0] in stdlib), module


def _code_strings() -> dict[Path, list[str]]:
    """String constants of each source file, docstrings left out (they may name the files they describe)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    docs.add(id(body[0].value))
        out[path] = [n.value for n in ast.walk(tree)
                     if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]
    return out


# Names of the run-folder protocol and the experiment's files: each written once in src/.
PROTOCOL = ["train.yaml", "train.log", "train_result.json", "train_failed.json", ".attempts",
            "adapter_model.safetensors", "chat_template.jinja", "train_results.json", "trainer_log.jsonl",
            "answers.", ".partial.jsonl", "predictions.", "result.", "metrics.",
            "runs", "parity.json", "template.json", "server_", "test.json", "dataset_info.json", "report.html", "figures",
            "embeddings-minilm.npz", "lorasweep-build.json"]
# Environment variables and tools (as the code spells them, not in messages): each in one module of src/.
RULES = ["HF_HUB_OFFLINE", "LORASWEEP_HOME", "LORASWEEP_ROOT", "LORASWEEP_API_KEY",
         "LORASWEEP_EXPERIMENT", "nvidia-smi", "llamafactory-cli", "CUDA_VISIBLE_DEVICES", "model_name_or_path"]


def test_protocol_names_are_written_once():
    strings = _code_strings()
    for name in PROTOCOL:
        where = [(p.relative_to(SRC), s) for p, ss in strings.items() for s in ss if s == name]
        assert len(where) == 1, f"{name!r} is written {len(where)} times: {where}"
        assert where[0][0].as_posix() in ("lorasweep/runspec.py", "lorasweep/infra/paths.py",
                                          "lorasweep/models/embedded.py"), where


def test_tool_rules_live_in_one_module():
    """(The scripts in envscripts/ run elsewhere and cannot import tools.py; they are left out.)"""
    strings = {p: ss for p, ss in _code_strings().items() if p.parent.name != "envscripts"}
    for rule in RULES:
        files = sorted({str(p.relative_to(SRC)) for p, ss in strings.items() for s in ss if s == rule})
        assert len(files) == 1, f"{rule!r} appears in {files}"
