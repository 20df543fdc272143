"""The checkout as the collection ``threetier.k8s``, for code that imports its plugins outside Ansible.

The plugins import their shared code as ``ansible_collections.threetier.k8s.plugins.module_utils...``. A symlink
``ansible_collections/threetier/k8s`` -> the checkout in a temporary directory put on ``sys.path`` exposes it under
that name, with neither an installed collection nor scripts/setup.sh's ``.collections`` link.
``ansible_collections`` is a namespace package (the ``ansible`` wheel ships collections under it too), so the extra
path entry merges with the bundled collections.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from tests.harness import ROOT


def expose_collection(prefix: str = "threetier-") -> None:
    """Put the checkout on ``sys.path`` as ``ansible_collections.threetier.k8s`` (removed at exit)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    namespace = base / "ansible_collections" / "threetier"
    namespace.mkdir(parents=True)
    (namespace / "k8s").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(base))
