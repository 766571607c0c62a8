#!/usr/bin/env bash
# The HemSeg paper pins monai==1.3.0; the suite's reference is monai 1.6.1 (requirements/tests.txt). This runs the
# MONAI comparisons of the hemseg-paper and hemseg protocols (tests/evaluation/test_hemseg_paper_protocol.py,
# tests/evaluation/test_hemseg_protocol.py: grid voxel for voxel, Dice, IoU, HD95) against MONAI 1.3.0 instead.
# MONAI 1.3.0 predates NumPy 2: it calls ndarray.ptp(axis=1) (removed in NumPy 2) in the two functions that size
# the Spacingd output grid, and np.in1d; a throw-away copy gets np.ptp(x, axis=1) / np.isin, the same values.
# Usage: bash tools/benchmarks/monai_1_3_0_check.sh     (prints the MONAI version used and pytest's summary)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
py="$repo/.venv/bin/python"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" -m pip install -q --disable-pip-version-check --no-deps --target "$work/site" monai==1.3.0
sed -i 's/corners\.ptp(axis=1)/np.ptp(corners, axis=1)/' "$work/site/monai/transforms/spatial/functional.py"
sed -i 's/corners_out\.ptp(axis=1)/np.ptp(corners_out, axis=1)/g' "$work/site/monai/data/utils.py"
sed -i 's/return np\.in1d(x, y)/return np.isin(np.ravel(x), y)/' "$work/site/monai/transforms/utils_pytorch_numpy_unification.py"
if grep -rqE '\.ptp\(axis|np\.in1d\(' "$work/site/monai/transforms/spatial" "$work/site/monai/data/utils.py" "$work/site/monai/metrics"; then
  echo 'monai 1.3.0: an unpatched NumPy 1 call is left in the code this check uses' >&2; exit 1
fi
cd "$repo"
PYTHONPATH="$work/site" "$py" -c 'import monai; assert monai.__version__ == "1.3.0", monai.__version__; print("monai", monai.__version__, monai.__file__)'
PYTHONPATH="$work/site" "$py" -m pytest -q -p no:cacheprovider tests/evaluation/test_hemseg_paper_protocol.py \
    tests/evaluation/test_hemseg_protocol.py
