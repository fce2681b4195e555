"""The reproducibility contract (docs/reproducing.md), tested on the CPU the suite runs on.

* Same machine, same BLAS thread count, same chunks: bitwise the same probabilities, labels,
  flags, diagnostics and saliency (the line fits behind ``z_offset_kms`` excepted: within
  :data:`contract.LINE_FIT_RTOL`).
* One and two BLAS threads, and another BLAS kernel (``OPENBLAS_CORETYPE`` in a subprocess: the
  stand-in for another CPU kind, whose kernels round the last bits differently): within the
  tolerances of :mod:`contract`, labels and flags the same away from a threshold.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from agnlens.models.kernels import SMALL_BLOCK, blas_threads
from agnlens.models.persistence import save_model
from agnlens.models.svm import SpectrumSVC
from agnlens.simulate import simulate_set
from agnlens.stages import Executor, classify, explain_saliency, read_predictions

from contract import LINE_FIT_RTOL, LINE_FITS, assert_same_predictions, assert_same_saliency

N = 100  # test spectra; one chunk of N rows (>= SMALL_BLOCK) runs its products on every BLAS thread


@pytest.fixture(scope="module")
def setup():
    """An RBF model (its applicability checks: max_kernel, intercept share, nearest support vector)
    and 100 other simulated spectra."""
    train = simulate_set(150, seed=11)
    model = SpectrumSVC(kernel="rbf", C=10.0, random_state=0).fit(np.asarray(train.flux, float), train.labels)
    return model, simulate_set(N, seed=12), train.provenance["grid"]


def run(model, spectra, chunk: int = N) -> tuple[pd.DataFrame, np.ndarray]:
    executor = Executor(chunk_size=chunk)
    return classify(model, spectra, executor=executor), explain_saliency(model, spectra, executor=executor).values


def test_rerun_with_the_same_threads_and_chunks_is_bitwise_identical(setup):
    """Contract: same machine, BLAS threads and chunks give the same bits (line fits: within
    LINE_FIT_RTOL, their last bits follow memory alignment)."""
    model, spectra, _ = setup
    for chunk in (N, 40):
        (a, sal_a), (b, sal_b) = run(model, spectra, chunk), run(model, spectra, chunk)
        pd.testing.assert_frame_equal(a.drop(columns=list(LINE_FITS)), b.drop(columns=list(LINE_FITS)),
                                      check_exact=True)
        np.testing.assert_allclose(a[list(LINE_FITS)], b[list(LINE_FITS)], rtol=LINE_FIT_RTOL)
        np.testing.assert_array_equal(sal_a, sal_b)


def test_one_and_two_blas_threads_keep_the_contract(setup):
    """Contract: the BLAS thread count changes the last bits at most — probabilities, diagnostics
    and saliency within the tolerances, labels and flags the same away from a threshold."""
    model, spectra, _ = setup
    assert N >= SMALL_BLOCK  # else both runs would compute on one thread
    results = {}
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            if blas_threads() != threads:
                pytest.skip(f"the BLAS cannot run {threads} threads here")
            results[threads] = run(model, spectra)
    (one, sal_one), (two, sal_two) = results[1], results[2]
    assert_same_predictions(one, two, model)
    assert_same_saliency(sal_one, sal_two)


_OTHER_KERNEL = """
import json, sys
from threadpoolctl import threadpool_info
from agnlens.cli import main
code = main(sys.argv[1:])
blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
print(json.dumps({"code": code, "architecture": blas[0].get("architecture") if blas else None}))
"""


def _openblas_architecture() -> str | None:
    blas = [i for i in threadpool_info() if i["user_api"] == "blas" and i["internal_api"] == "openblas"]
    return blas[0].get("architecture") if blas else None


@pytest.mark.slow
def test_another_blas_kernel_keeps_the_contract(setup, tmp_path):
    """Contract across CPU kinds, emulated: the same model file classified here and in a process
    whose OpenBLAS runs its Prescott kernels on one thread (``OPENBLAS_CORETYPE``, SSE3: every
    x86-64 CPU has it) agree within the tolerances, labels and flags the same away from a threshold."""
    here = _openblas_architecture()
    if platform.machine().lower() not in ("x86_64", "amd64") or here is None:
        pytest.skip("needs numpy on OpenBLAS with run-time kernel selection on x86-64 (OPENBLAS_CORETYPE)")
    if here.lower() in ("prescott", "katmai"):
        pytest.skip(f"the BLAS runs its {here} kernels already")
    model, spectra, grid = setup
    from agnlens.io.store import write_store

    model_path = save_model(model, tmp_path / "m.skops", metadata={"task": "multiclass", "grid": grid})
    store = write_store(spectra, tmp_path / "s.zarr", chunk_size=N)
    args = ["classify", "--model", str(model_path), str(store), "--out"]
    from agnlens.cli import main

    assert main([*args, str(tmp_path / "here.csv")]) == 0
    env = {**os.environ, "OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _OTHER_KERNEL, *args, str(tmp_path / "there.csv")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert there["code"] == 0
    assert there["architecture"] not in (None, here), f"the subprocess ran the {there['architecture']} kernels"
    assert_same_predictions(read_predictions(tmp_path / "here.csv"), read_predictions(tmp_path / "there.csv"), model)
