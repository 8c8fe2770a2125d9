"""``python -m monai_dicomseg``: the ``monai-dicomseg`` command line."""
import sys

from monai_dicomseg.cli.main import main

sys.exit(main())
