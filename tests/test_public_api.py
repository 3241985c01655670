"""Every name the package advertises resolves, and importing the package stays light."""

import subprocess
import sys

import worldmodel


def test_every_public_name_resolves():
    for name in worldmodel.__all__:
        assert getattr(worldmodel, name) is not None


def test_import_does_not_load_torch():
    code = "import sys, worldmodel; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
