import sys

from lakevec.cli import main

sys.exit(main())
