"""`python -m data_prep.synthetic --out DIR`: write a synthetic IDRiD-like data set."""

import sys

from .data_set import main

sys.exit(main())
