"""``python -m control_plane.cli``: the same as the ``termfleet`` command."""

from control_plane.cli import main

main()
