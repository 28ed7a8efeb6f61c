"""Stand-in for pip's get-pip.py, which ansible-test downloads from a host this machine cannot
reach: pip from Python's own ensurepip, then the pip install ansible-test asked for. ansible-test
runs pip with a filtered environment and no configuration files, so the CA bundle the project's
pip trusts (TLS may be inspected on the way out) is given to the new pip's own certifi copy."""
import ensurepip
import glob
import os
import shutil
import subprocess
import sys

CERT = "@CERT@"


def trust():
    if CERT and os.path.exists(CERT):
        for pem in glob.glob(os.path.join(sys.prefix, "lib", "python*", "site-packages", "pip", "_vendor",
                                          "certifi", "cacert.pem")):
            shutil.copy(CERT, pem)


ensurepip.bootstrap(upgrade=True)
trust()
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
rc = subprocess.call([sys.executable, "-m", "pip", "install", *args])
trust()
sys.exit(rc)
