"""Convert musicnn's MSD_musicnn TF1 checkpoint into the .npz musicdb ships (run once).

    pip download --no-deps musicnn==0.1.0 -d /tmp            # the 29 MB wheel (ISC licence)
    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu
    /tmp/tfenv/bin/python benchmarks/musicnn_weights.py /tmp/musicnn-0.1.0-py3-none-any.whl

Writes musicdb/analysis/weights/msd_musicnn.npz (float32, compressed) and, beside it,
msd_musicnn.LICENSE.txt: the wheel's ISC notice and its SHA-256 (also stored in the npz as
the string arrays `licence`, `source_wheel` and `source_sha256`). TensorFlow is needed only
here, to read the checkpoint; musicdb's forward pass (musicdb.analysis.musicnn) is numpy.

What is stored, by the layer names of musicnn's models.py (build_musicnn, MSD: 64 mid-end
filters, 200 back-end units). Every batch normalisation (inference mode, epsilon 1e-3) is
folded to a per-channel `scale` and `shift`; the one followed directly by a dense layer (the
pooled features before `penultimate`'s dense) is folded into that layer's weights, which is
exact. The others stay as scale/shift because a ReLU or a zero padding comes between them and
the next weights, so folding them would change the result.

    input_scale, input_shift        batch_normalization      (on the log-mel input, 1 channel)
    timbral74_kernel (7, 38, 204)   conv2d    + batch_normalization_1 -> timbral74_scale/shift
    timbral77_kernel (7, 67, 204)   conv2d_1  + batch_normalization_2
    temporal128_kernel (128, 51)    conv2d_2  + batch_normalization_3
    temporal64_kernel (64, 51)      conv2d_3  + batch_normalization_4
    temporal32_kernel (32, 51)      conv2d_4  + batch_normalization_5
    midend1_kernel (7, 561, 64)     conv2d_5  + batch_normalization_6
    midend2_kernel (7, 64, 64)      conv2d_6  + batch_normalization_7
    midend3_kernel (7, 64, 64)      conv2d_7  + batch_normalization_8
    dense_kernel (1506, 200)        batch_normalization_9 folded into dense, + ..._10 scale/shift
    logits_kernel (200, 50)         dense_1
(each *_kernel has its *_bias).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import zipfile
from pathlib import Path

import numpy as np

EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
MODEL = "MSD_musicnn"
OUT = Path(__file__).resolve().parent.parent / "musicdb" / "analysis" / "weights"
CONVS = [  # (our name, conv layer, the batch norm after its ReLU)
    ("timbral74", "conv2d", "batch_normalization_1"),
    ("timbral77", "conv2d_1", "batch_normalization_2"),
    ("temporal128", "conv2d_2", "batch_normalization_3"),
    ("temporal64", "conv2d_3", "batch_normalization_4"),
    ("temporal32", "conv2d_4", "batch_normalization_5"),
    ("midend1", "conv2d_5", "batch_normalization_6"),
    ("midend2", "conv2d_6", "batch_normalization_7"),
    ("midend3", "conv2d_7", "batch_normalization_8"),
]


def bn_affine(get, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode batch norm as y = x * scale + shift."""
    gamma, beta = get(f"{name}/gamma"), get(f"{name}/beta")
    mean, var = get(f"{name}/moving_mean"), get(f"{name}/moving_variance")
    scale = gamma / np.sqrt(var + EPSILON)
    return scale, beta - mean * scale


def convert(get) -> dict[str, np.ndarray]:
    """The stored arrays, float64 arithmetic, float32 out."""
    out: dict[str, np.ndarray] = {}
    out["input_scale"], out["input_shift"] = bn_affine(get, "batch_normalization")
    for ours, conv, bn in CONVS:
        kernel = get(f"{conv}/kernel")  # (time, freq-or-channels, 1, filters)
        kernel = kernel[:, :, 0, :]
        if ours.startswith("temporal"):
            kernel = kernel[:, 0, :]  # (time, filters): one frequency band at a time
        out[f"{ours}_kernel"], out[f"{ours}_bias"] = kernel, get(f"{conv}/bias")
        out[f"{ours}_scale"], out[f"{ours}_shift"] = bn_affine(get, bn)
    scale9, shift9 = bn_affine(get, "batch_normalization_9")
    dense, dense_bias = get("dense/kernel"), get("dense/bias")
    out["dense_kernel"] = scale9[:, None] * dense
    out["dense_bias"] = dense_bias + shift9 @ dense
    out["dense_scale"], out["dense_shift"] = bn_affine(get, "batch_normalization_10")
    out["logits_kernel"], out["logits_bias"] = get("dense_1/kernel"), get("dense_1/bias")
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def read_checkpoint(folder: Path):
    import tensorflow as tf  # only this script needs it

    # The wheel's checkpoint files have an empty name: the prefix is the folder itself.
    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + "/")
    return lambda name: reader.get_tensor(name).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="musicnn-0.1.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sha256 = hashlib.sha256(args.wheel.read_bytes()).hexdigest()
    with zipfile.ZipFile(args.wheel) as wheel, tempfile.TemporaryDirectory() as tmp:
        licence = wheel.read("musicnn-0.1.0.dist-info/LICENSE.md").decode().strip()
        for member in wheel.namelist():
            if member.startswith(f"musicnn/{MODEL}/"):
                wheel.extract(member, tmp)
        arrays = convert(read_checkpoint(Path(tmp) / "musicnn" / MODEL))
    args.out.mkdir(parents=True, exist_ok=True)
    provenance = {"licence": licence, "source_wheel": args.wheel.name, "source_sha256": sha256,
                  "model": MODEL}
    np.savez_compressed(args.out / "msd_musicnn.npz", **arrays,
                        **{k: np.array(v) for k, v in provenance.items()})
    (args.out / "msd_musicnn.LICENSE.txt").write_text(
        f"The weights in msd_musicnn.npz are musicnn's {MODEL} model (Jordi Pons, Xavier Serra,\n"
        "MTG-UPF), converted by benchmarks/musicnn_weights.py from\n"
        f"{args.wheel.name}  SHA-256 {sha256}\n"
        "and distributed under its licence (ISC):\n\n" + licence + "\n")
    size = (args.out / "msd_musicnn.npz").stat().st_size
    print(f"{len(arrays)} arrays, {sum(a.size for a in arrays.values()):,} values, "
          f"{size / 1e6:.1f} MB -> {args.out}; wheel SHA-256 {sha256}")


if __name__ == "__main__":
    main()
