"""The two scripts Gradescope runs from the autograder zip's root: ``setup.sh`` and ``run_autograder``.

Both take the container root from ``$AUTOGRADER_ROOT`` (default ``/autograder``), so the tests run them against a
temporary folder laid out like Gradescope's. ``setup.sh`` runs once, as root, when Gradescope builds the image;
``run_autograder`` runs once per submission.
"""

from __future__ import annotations

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu, network allowed).
#
# 1. installs bubblewrap (the kernels' namespace sandbox), Python 3.11 or newer (apt) and, into the virtual environment
#    $AUTOGRADER_ROOT/venv, the pinned environment: constraints.txt is the exact set of versions the kit is
#    tested with, requirements.txt the kit's dependencies; torch comes from PyTorch's CPU-only index
#    (Gradescope has no GPU, and the CUDA wheels weigh gigabytes);
# 2. writes source/environment.sh: the interpreter, PYTHONPATH (the kit's package, shipped in source/lib) and
#    FASTAI_HOME (source/fastai);
# 3. runs `python -m autograder.gradescope.prepare`: provisions the MNIST sample (from source/data/ in the
#    zip, or downloaded from the URL given when the zip was built), builds the course's gradebook, imports the
#    grading stack once and compiles the package, so no submission pays for any of it.
#
# Environment:
#   AUTOGRADER_ROOT          the container root (default /autograder)
#   AUTOGRADER_SKIP_INSTALL  1: skip step 1 (no apt-get, no pip) and use $AUTOGRADER_PYTHON (default python3),
#                            which must already have the pinned environment; the tests use it
#   AUTOGRADER_PYTHON        the interpreter to build the venv from (default: the first of python3.11, python3.12,
#                            python3 that is 3.11+ with tarfile's extraction filters)
#   AUTOGRADER_GS_PYTHON     (run_autograder) the interpreter that grades, instead of the one setup used
#   AUTOGRADER_TORCH_INDEX   where torch comes from (default https://download.pytorch.org/whl/cpu; "" for PyPI)
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"

if [ "${AUTOGRADER_SKIP_INSTALL:-0}" = 1 ]; then
    PYTHON="$(command -v "${AUTOGRADER_PYTHON:-python3}")"
else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq bubblewrap ca-certificates >/dev/null
    command -v python3.11 >/dev/null 2>&1 || apt-get install -y -qq python3.11 >/dev/null 2>&1 || true
    usable='import sys, tarfile; sys.exit(not (sys.version_info >= (3, 11) and hasattr(tarfile, "data_filter")))'
    base=""
    for candidate in ${AUTOGRADER_PYTHON:-} python3.11 python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "$usable" 2>/dev/null; then
            base="$(command -v "$candidate")"
            break
        fi
    done
    if [ -z "$base" ]; then
        echo "setup.sh: no Python 3.11+ with tarfile's extraction filters (3.11.4+, 3.12.0+) here: choose the Ubuntu 24.04 base image" >&2
        exit 1
    fi
    version="$("$base" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt-get install -y -qq "python$version-venv" >/dev/null 2>&1 || true
    "$base" -m venv "$ROOT/venv"
    PYTHON="$ROOT/venv/bin/python"
    index="${AUTOGRADER_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$PYTHON" -m pip install --quiet --disable-pip-version-check ${index:+--extra-index-url "$index"} \
        -c "$SOURCE/constraints.txt" -r "$SOURCE/requirements.txt"
    chmod go+rx "$ROOT"
    chmod -R go+rX "$ROOT/venv"
fi

cat >"$SOURCE/environment.sh" <<EOF
export AUTOGRADER_GS_PYTHON="\${AUTOGRADER_GS_PYTHON:-$PYTHON}"
export PATH="\$(dirname "\$AUTOGRADER_GS_PYTHON"):\$PATH"
export PYTHONPATH="$SOURCE/lib"
export FASTAI_HOME="$SOURCE/fastai"
export MPLCONFIGDIR="$SOURCE/matplotlib"
export PYTHONDONTWRITEBYTECODE=1
EOF
source "$SOURCE/environment.sh"
"$PYTHON" -m autograder.gradescope.prepare --root "$ROOT"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this once per submission: it grades the notebook found under $AUTOGRADER_ROOT/submission/
# with the kit's pipeline, limits and sandbox, and writes $AUTOGRADER_ROOT/results/results.json. Whatever
# happens, a results.json is written: when Python itself cannot run, this script writes one saying so.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
if [ -f "$ROOT/source/environment.sh" ]; then
    source "$ROOT/source/environment.sh"
    "$AUTOGRADER_GS_PYTHON" -m autograder.gradescope.run --root "$ROOT"
    code=$?
else
    echo "run_autograder: $ROOT/source/environment.sh is missing: setup.sh did not finish"
    code=1
fi
[ "$code" = 0 ] || echo "run_autograder: the grader exited with code $code"
if [ ! -s "$RESULTS" ]; then
    printf '%s\n' '{"score": 0.0, "tests": [], "stdout_visibility": "hidden",' \
        '"output": "The autograder could not run (the grading environment failed). Your submission was not graded: please tell your instructor."}' \
        >"$RESULTS"
fi
exit 0
"""
