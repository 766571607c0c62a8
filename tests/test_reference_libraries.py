"""The reference libraries the protocols are checked against are required on CI, skipped with the reason elsewhere.

``tests/conftest.py::require_reference`` replaces ``pytest.importorskip`` for medpy, MONAI, surface-distance and nnunetv2;
``.ci/run`` runs the suite with ``REQUIRE_REFERENCES=1``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('env, outcome', [({}, 'skipped'), ({'REQUIRE_REFERENCES': '1'}, 'failed'),
                                          ({'CI': 'true'}, 'failed'), ({'REQUIRE_REFERENCES': '0'}, 'skipped')])
def test_missing_reference_skips_off_ci_and_fails_on_ci(tmp_path, env, outcome):
    probe = tmp_path / 'test_probe.py'
    probe.write_text('import importlib.util\n'
                     f'spec = importlib.util.spec_from_file_location("c", {str(REPO / "tests" / "conftest.py")!r})\n'
                     'c = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(c)\n\n'
                     'def test_needs_it():\n    c.require_reference("medpy_not_installed_here.metric")\n')
    clean = {k: v for k, v in os.environ.items() if k not in ('CI', 'REQUIRE_REFERENCES')}
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-rsf', '-p', 'no:cacheprovider', str(probe)],
                          cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True)
    assert f'1 {outcome}' in proc.stdout, proc.stdout
    assert 'reference library medpy_not_installed_here.metric is not installed' in proc.stdout


def test_ci_requires_the_references_and_the_extras_pin_them():
    """.ci/run sets the flag, and every reference library is pinned in requirements/tests.txt as the skip
    message tells the user to install it."""
    assert re.search(r'^REQUIRE_BROWSER=1 REQUIRE_REFERENCES=1( REQUIRE_SLURM=1)? make test$', (REPO / '.ci/run').read_text(),
                     re.M)
    import importlib.util
    spec = importlib.util.spec_from_file_location('tests_conftest', REPO / 'tests' / 'conftest.py')
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    def pins(name: str) -> set:
        return {line.strip() for line in (REPO / 'requirements' / name).read_text().splitlines()
                if line.strip() and not line.startswith('#')}

    assert set(conftest.REFERENCE_EXTRAS) == {'medpy', 'monai', 'surface_distance', 'nnunetv2'}
    assert {conftest.REFERENCE_EXTRAS[k] for k in ('medpy', 'monai', 'surface_distance')} <= pins('tests.txt')
    # nnunetv2 without its dependencies (they would replace the pinned torch): its own file, which make install reads
    assert conftest.REFERENCE_EXTRAS['nnunetv2'] in pins('nnunet.txt')
    assert '--no-deps -r requirements/nnunet.txt' in (REPO / 'Makefile').read_text()
