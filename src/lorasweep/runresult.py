"""Shim for old pickles: result.<mode>.pkl files name the class lorasweep.runresult.RunResult, its home
before the package was grouped into folders (it now lives in score/runresult.py). Keep this module so
they still load; new code imports lorasweep.score.runresult."""
from .score.runresult import RunResult

__all__ = ["RunResult"]
