"""Scoring: the eval stage (evaluation.py), the LangChain clients (score.py), a scored run's record
(runresult.py), validation selection (selection.py), classical baselines (baselines.py)."""
# Shim for old pickles: result.<mode>.pkl files written before runresult.py existed name the class
# lorasweep.score.RunResult (lorasweep.score was then a module); they still load through this name.
from .runresult import RunResult

__all__ = ["RunResult"]
