"""The installed form of the daemon: ``pip install .`` puts ``daemon``, ``models`` and ``shared`` inside this
package (``site-packages/vfx_mocap/``), never as top-level names that collide with other distributions (PyPI's
``python-daemon`` is ``daemon``). The ``vfx-mocap`` command (and ``python -m vfx_mocap``) makes them importable
under their own names for this process only, then runs the daemon's command line; in this repository they are the
top-level folders beside this one, and ``python -m daemon`` keeps working from the checkout.
"""

from __future__ import annotations

import os
import sys


def use_bundled_packages() -> None:
    """Make ``daemon``, ``models`` and ``shared`` importable: from inside this package when installed, else from
    the repository this folder sits in."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = here if os.path.isdir(os.path.join(here, "daemon")) else os.path.dirname(here)
    if root not in sys.path:
        sys.path.insert(0, root)


def main() -> int:
    """The ``vfx-mocap`` console command."""
    use_bundled_packages()
    from daemon.cli import main as cli_main

    return cli_main()
