"""The layers point one way: `data_prep` (data) below `u2net_mini` (model, training, tools).

Each check runs in a fresh interpreter, since this test process has long imported both.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(code):
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_data_prep_imports_without_u2net_mini():
    # `None` in sys.modules makes any `import u2net_mini...` raise ImportError, so a single
    # upward import anywhere in data_prep (its subpackages included) fails this test.
    out = run_python(
        "import importlib, pkgutil, sys\n"
        "sys.modules['u2net_mini'] = None\n"
        "import data_prep\n"
        "names = [m.name for m in pkgutil.walk_packages(data_prep.__path__, 'data_prep.')\n"
        "         if not m.name.endswith('__main__')]  # a __main__ runs its command\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    assert int(out) >= 10  # the walk found the modules (an empty walk would prove nothing)


def test_evaluate_does_not_import_training():
    out = run_python(
        "import sys\n"
        "import u2net_mini.evaluate\n"
        "print('u2net_mini.train' in sys.modules)\n"
    )
    assert out.strip() == "False"
