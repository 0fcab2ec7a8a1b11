"""``python -m vfx_mocap``: the same as the ``vfx-mocap`` command."""

import sys

from vfx_mocap import main

sys.exit(main())
