"""Preflight: every problem at once (check.py), and every run's resolved train.yaml with LLaMA-Factory's
verdict on it (trainargs.py)."""
