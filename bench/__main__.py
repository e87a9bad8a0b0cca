"""``python -m bench``."""

import pathlib
import sys

# tests/support/images.py builds the skopeo images: make the repository root importable from anywhere.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from bench.runner import main  # noqa: E402

sys.exit(main())
