"""Where musicnn's forward pass spends its CPU, and how fast it could be at best on this core.

    python benchmarks/musicnn_layers.py [--patches 20] [--repeat 3]

Per layer of musicdb.analysis.musicnn.forward: the multiply-adds a patch as computed (the
timbral convolutions through Winograd F(6, 7)), the CPU ms a patch (one BLAS thread, the best
of --repeat runs over --patches random patches) and the GMAC/s that makes. Beside them, in the
same run, the single-thread float32 GEMM rate of a large square product (what BLAS reaches at
best on this core): the multiply-adds divided by that rate are the least time the network
can take done this way, and so the most x realtime a 3 s patch allows. Printed last: that
bound for musicnn on every patch beside the measured figure.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from musicdb.analysis import musicnn as nn

PATCH_SECONDS = 3.0


def best_ms(run, repeat: int, n: int) -> float:
    """Best CPU ms per item of `run()` (which does n items) over `repeat` tries."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, (time.process_time() - started) / n)
    return 1000 * best


def gemm_rate(repeat: int) -> float:
    """GMAC/s of a 1024 x 1024 x 1024 float32 product, one thread."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((1024, 1024), dtype=np.float32) for _ in range(2))
    a @ b
    ms = best_ms(lambda: [a @ b for _ in range(8)], repeat, 8)
    return 1024**3 / (ms / 1000) / 1e9


def layers(patches: np.ndarray, repeat: int) -> list[tuple[str, float, float]]:
    """(layer, M multiply-adds a patch, CPU ms a patch)."""
    w = nn.prepared()
    normalised = [p * w["input_scale"] + w["input_shift"] for p in patches]
    n, t = len(patches), nn.PATCH_FRAMES
    out = []
    alpha = nn.WINOGRAD_OUTPUTS + 6
    for name in ("timbral74", "timbral77"):
        _, width, c = w[f"{name}_kernel"].shape
        bands = nn.N_MELS - width + 1
        tiles = -(-t // nn.WINOGRAD_OUTPUTS)
        macs = tiles * alpha * bands * width * c
        ms = best_ms(lambda name=name: [nn._timbral_max(p, w, name) for p in normalised],
                     repeat, n)
        out.append((f"{name} (Winograd)", macs / 1e6, ms))
    for length in nn.TEMPORAL:
        c = w[f"temporal{length}_kernel"].shape[-1]
        macs = nn.N_MELS * t * length * c
        ms = best_ms(lambda length=length: [nn._temporal_max(p, w, length) for p in normalised],
                     repeat, n)
        out.append((f"temporal{length}", macs / 1e6, ms))
    front = [nn.front_end(p, w) for p in normalised]
    mid1 = [nn._midend_conv(f, w, "midend1") for f in front]
    for name, inputs in (("midend1", front), ("midend2", mid1), ("midend3", mid1)):
        k = w[f"{name}_kernel"]
        macs = t * k.shape[0] * k.shape[1] * k.shape[2]
        ms = best_ms(lambda name=name, inputs=inputs: [nn._midend_conv(x, w, name)
                                                       for x in inputs], repeat, n)
        out.append((name, macs / 1e6, ms))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    patches = rng.uniform(0, 3, (args.patches, nn.PATCH_FRAMES, nn.N_MELS)).astype(np.float32)
    with threadpool_limits(limits=1):
        rate = gemm_rate(args.repeat)
        found = layers(patches, args.repeat)
        whole = best_ms(lambda: nn.forward(patches), args.repeat, args.patches)
    print(f"single-thread float32 GEMM (1024^3): {rate:.1f} GMAC/s")
    print(f"{'layer':22} {'M MACs':>8} {'ms/patch':>9} {'GMAC/s':>7}")
    for name, macs, ms in found:
        print(f"{name:22} {macs:8.0f} {ms:9.2f} {macs / ms:7.1f}")
    total = sum(m for _, m, _ in found)
    floor = total / rate  # ms
    print(f"{'forward (all layers)':22} {total:8.0f} {whole:9.2f} {total / whole:7.1f}")
    print(f"at the GEMM rate the network needs >= {floor:.1f} ms a patch: musicnn's network "
          f"alone at most {1000 * PATCH_SECONDS / floor:.0f}x realtime per core "
          f"(measured: {1000 * PATCH_SECONDS / whole:.0f}x)")


if __name__ == "__main__":
    main()
