import gzip
import struct

import numpy as np
import pytest

from tmdc_compiler import portable_rng
from tmdc_compiler.data import read_idx
from tmdc_compiler.reference_dc import DCSettings, Stage, classify, wilson

# Shared with the TypeScript tests (tests/fixtures/portable_rng.json): same numbers there.
RNG_VECTORS = {
    "uniform(0,0,4)": [0.06142727693077177, 0.6830989216687158, 0.21510037418920547, 0.46640309772919863],
    "normal(1,2,4)": [-2.370382785797119, -0.6366204023361206, 0.5326236486434937, -2.757159948348999],
}


def test_portable_rng_is_stable():
    u = portable_rng.uniform(0, 0, 4)
    assert np.allclose(u, RNG_VECTORS["uniform(0,0,4)"], rtol=0, atol=1e-15)
    assert np.array_equal(portable_rng.normal(1, 2, 4), np.float32(RNG_VECTORS["normal(1,2,4)"]))
    n = portable_rng.normal(123, 7, 100_001)
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01
    assert not np.array_equal(portable_rng.normal(123, 8, 10), n[:10])


def test_li_et_al_grid_and_calls():
    s = DCSettings()  # the paper's CIFAR-10 schedule
    grid = s.full_grid()
    assert grid[0] == 1 and grid[-1] == 999 and len(grid) == 500
    stage1, stage2 = s.stage_indices()
    assert list(grid[stage1][:3]) == [11, 31, 51] and grid[stage1][-1] == 991
    assert len(stage1) == 50 and len(stage2) == 450
    assert s.unet_calls(10) == 10 * 50 + 5 * 450 == 2750


def test_stratified_grid_stays_in_strata():
    s = DCSettings(timesteps="stratified", grid_size=100, seed=3)
    g = s.full_grid()
    assert np.all(g // 10 == np.arange(100)) and len(set(g % 10)) > 1


def test_reference_classifier_is_deterministic(tiny_unet):
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    s = DCSettings(stages=(Stage(4, 3), Stage(8, 1)), grid_size=8)
    a = classify(tiny_unet, x, s, 10)
    b = classify(tiny_unet, x, s, 10, batch_rows=7)
    assert [v.label for v in a] == [v.label for v in b]
    assert np.allclose(a[0].errors_sum, b[0].errors_sum, rtol=1e-6)
    assert a[0].unet_calls == s.unet_calls(10) == 10 * 4 + 3 * 4
    p = a[0].posterior(100.0)
    # posterior over the finalists (same timesteps), zero for classes eliminated earlier
    assert abs(p.sum() - 1) < 1e-12 and p.argmax() == a[0].label
    assert set(np.nonzero(p)[0]) == set(a[0].finalists) and len(a[0].finalists) == 3


def test_wilson_interval():
    lo, hi = wilson(90, 100)
    assert 0.82 < lo < 0.83 and 0.94 < hi < 0.95


def test_idx_reader(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8)
    p = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:
        f.write(struct.pack(">HBB3I", 0, 8, 3, 2, 3, 4) + data.tobytes())
    assert np.array_equal(read_idx(p), data.reshape(2, 3, 4))
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(struct.pack(">HBB3I", 0, 8, 3, 2, 3, 4) + data.tobytes()[:-1])
    with pytest.raises(ValueError, match="expected 24 bytes"):
        read_idx(bad)


def test_sequential_race_drops_a_significantly_worse_class_and_stops_on_budget():
    """The same synthetic race as tests/class_pruning_test.ts (lib/class_pruning.ts)."""
    import math

    from tmdc_compiler.reference_dc import ClassRace, Sequential, timestep_order

    order = timestep_order(8, 0)
    assert sorted(order.tolist()) == list(range(8))
    race = ClassRace(3, Sequential(z=2, batch=2, min_timesteps=4, max_timesteps=8), order)
    while (js := race.next()) is not None:
        for c in race.alive:
            for j in js:
                race.errors[c].append([0.5, 0.6, 0.5][c] + 0.001 * math.sin(7 * j + c))
        race.decide(len(js))
    assert race.exit_at == [None, 4, None]
    assert race.stop == "budget"
    assert race.rounds == [[0, 1, 2], [0, 2], [0, 2], [0, 2]]
