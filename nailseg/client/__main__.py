"""``python -m nailseg.client``: the command-line client (nailseg/client/cli.py)."""

from nailseg.client.cli import main

main()
