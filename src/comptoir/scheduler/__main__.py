import sys

from comptoir.scheduler.server import main

sys.exit(main())
