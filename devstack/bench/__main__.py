"""``python -m devstack.bench`` (``make bench``)."""

from __future__ import annotations

import sys

from devstack.bench.report import main

sys.exit(main())
