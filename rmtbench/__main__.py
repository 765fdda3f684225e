"""``python -m rmtbench``."""
import sys

from rmtbench.cli import main

sys.exit(main())
