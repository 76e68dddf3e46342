"""``python -m kdviz``: the command line (see :mod:`kdviz.cli`)."""
import sys

from kdviz.cli import main

sys.exit(main())
