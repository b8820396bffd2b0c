"""Shim: `python -m lorasweep.tools ...` (the documented command, e.g. `python -m lorasweep.tools home`) runs
infra/tools.py, its home since the package was grouped into folders. Standard library only, as tools.py is."""
import sys

from .infra.tools import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
