import sys

from mad_sim.cli import main

sys.exit(main())
