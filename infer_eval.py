"""Score runs of an experiment against a running OpenAI-compatible server.

    LORASWEEP_API_KEY=... python infer_eval.py experiments/demo.yaml \
        --base-url http://127.0.0.1:8000/v1 --runs gemma-3-270m__n0__base ...

`bash shell/eval.sh` starts the server and calls this for you.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from lorasweep.cli import infer_eval_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(infer_eval_main())
