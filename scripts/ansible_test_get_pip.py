"""Stand-in for the pip bootstrap script that `ansible-test --venv` downloads.

ansible-test creates each sanity virtualenv without pip and then runs a cached ``get_pip_<version>.py``
(fetched from ci-files.testing.ansible.com, which these machines cannot reach) with pip's own arguments, e.g.
``--disable-pip-version-check pip==25.2 setuptools wheel``. This script does the same job from what is at
hand: CPython's bundled ``ensurepip`` puts a pip into the virtualenv, and that pip installs the exact
versions ansible-test asked for from PyPI. scripts/setup.sh copies it to ~/.ansible/test/cache/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# get-pip.py's own switches: "do not also install setuptools/wheel", which plain `pip install` never does.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


# ansible-test runs pip with a reduced environment, so a machine whose PyPI access goes through a TLS proxy
# with its own CA (PIP_CERT / SSL_CERT_FILE in the user's environment) would fail every download; the CA
# bundle is written into the virtualenv's own pip.conf, which pip reads whatever the environment.
CA_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def ca_bundle() -> Path | None:
    for name in CA_VARIABLES:
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return SYSTEM_BUNDLE if SYSTEM_BUNDLE.is_file() else None


def main() -> int:
    # In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own process's environment,
    # which would hide the pip.conf below from the install that follows.
    bootstrap = subprocess.call([sys.executable, "-m", "ensurepip", "--default-pip"])
    if bootstrap != 0:
        return bootstrap
    bundle = ca_bundle()
    if bundle is not None:
        (Path(sys.prefix) / "pip.conf").write_text(f"[global]\ncert = {bundle}\n")
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    return subprocess.call([sys.executable, "-m", "pip", "install", *args])


if __name__ == "__main__":
    sys.exit(main())
