import sys

from kdviz.cli import main

sys.exit(main())
