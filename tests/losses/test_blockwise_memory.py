"""Peak memory of the memory-bounded (blockwise) InfoNCE, measured in a fresh subprocess.

The peak is the growth of the resident set across one forward + backward: the kernel's
high-water mark (``VmHWM``) is reset through ``/proc/self/clear_refs`` once the inputs exist
and kernels are warmed up, and compared with the resident set at that moment. A fresh
process per measurement keeps other tests from polluting it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_SCRIPT = r"""
import json, re, sys, torch
from collapselab.losses import info_nce, nt_xent
torch.manual_seed(0)
torch.set_num_threads(2)
kind, n, d, block = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
block = None if block == "none" else int(block)
def one_dir(a, b, block_size):
    return info_nce(a, b, block_size=block_size)
fn = nt_xent if kind == "nt_xent" else one_dir
fn(torch.randn(64, d, requires_grad=True), torch.randn(64, d), block_size=block).backward()
z1 = torch.randn(n, d, requires_grad=True)
z2 = torch.randn(n, d, requires_grad=True)
def kib(key):
    return int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak-RSS high-water mark to the current RSS
before = kib("VmRSS")
loss = fn(z1, z2, block_size=block)
loss.backward()
after = kib("VmHWM")
print(json.dumps({"peak_mib": (after - before) / 1024, "loss": loss.item()}))
"""


def _peak_mib(kind: str, n: int, d: int, block: int | None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, kind, str(n), str(d), str(block).lower()],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])


# Bound for N=16384, d=128, block 256: the reused 256 x N block is 16 MiB, the (N, d) inputs,
# normalised copies and gradients ~8 MiB each; the plain N x N logits alone would be 1 GiB.
BOUND_MIB = 160.0


pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc peak-RSS reset"
)


def test_blockwise_info_nce_peak_memory_n16384() -> None:
    peak = _peak_mib("info_nce", 16384, 128, 256)
    assert peak < BOUND_MIB, f"blockwise InfoNCE at N=16384 grew RSS by {peak:.0f} MiB"


def test_the_measurement_sees_the_plain_n_squared_buffer() -> None:
    # The plain path keeps one N x N float32 matrix (64 MiB at N=4096): the probe must see it.
    peak = _peak_mib("info_nce", 4096, 128, None)
    assert peak > 60.0, f"plain InfoNCE at N=4096 grew RSS by only {peak:.0f} MiB"


@pytest.mark.slow
def test_blockwise_nt_xent_peak_memory_n16384() -> None:
    # 2N = 32768 candidates: the plain 2N x 2N logits would be 4 GiB.
    peak = _peak_mib("nt_xent", 16384, 128, 256)
    assert peak < 2 * BOUND_MIB, f"blockwise NT-Xent at N=16384 grew RSS by {peak:.0f} MiB"
