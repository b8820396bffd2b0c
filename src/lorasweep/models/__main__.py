"""`python -m lorasweep.models ...` (build the embedded models), as before embedded.py moved into models/."""
import sys

from .embedded import main

sys.exit(main())
