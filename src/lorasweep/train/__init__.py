"""Training: the runs (train.py), train.budget as epochs and steps (budget.py), where jobs run (executor.py)."""
