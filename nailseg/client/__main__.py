"""``python -m nailseg.client``: the command-line client (nailseg/client/cli.py)."""

import sys

from nailseg.client.cli import main

sys.exit(main())
