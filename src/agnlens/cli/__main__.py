import sys

from agnlens.cli import main

sys.exit(main())
