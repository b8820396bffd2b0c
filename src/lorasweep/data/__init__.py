"""The user's data: loading and splits (splits.py), the demos' generated data (demo_data.py), token lengths (lengths.py)."""
