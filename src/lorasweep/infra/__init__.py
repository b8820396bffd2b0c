"""Process and file helpers: child processes and the lock (procs.py), atomic writes (atomic.py), the tools
lorasweep drives (tools.py, standard library only), where files live (paths.py), the offline bundle (bundle.py)."""
