"""Print the runtime stamp: a short hash of the pins and the package metadata.

update-runtime.sh and update-runtime.cmd store it in .venv/.runtime-stamp after an install and
compare it on the next run, so an unchanged runtime is left alone. Line endings are normalised
so that a Windows checkout (CRLF) gives the same stamp as a Linux one.
"""

import hashlib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
digest = hashlib.sha256()
for name in ("requirements/constraints.txt", "pyproject.toml"):
    digest.update((ROOT / name).read_bytes().replace(b"\r\n", b"\n"))
flavour = sys.argv[1] if len(sys.argv) > 1 else ""
print(f"{digest.hexdigest()[:16]}-{flavour}")
