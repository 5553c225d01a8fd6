"""Proof that musicdb.analysis.musicnn is musicnn's network: the original TF model, same input.

    # 1. inputs (musicdb's venv): one 3 s patch from the middle of each of >= 5 corpus
    #    recordings, and of generated signals (tones, noise, clicks, silence, a 1 s file)
    .venv/bin/python benchmarks/musicnn_parity.py inputs benchmarks/corpus /tmp/parity_in.npz
    # 2. the original (a throw-away venv with tensorflow-cpu): musicnn 0.1.0's own models.py
    #    from the wheel, its checkpoint restored as its extractor.py does (pip install
    #    tensorflow-cpu tf-keras: its tf.compat.v1.layers need Keras 2)
    /tmp/tfenv/bin/python benchmarks/musicnn_parity.py original \
        /tmp/musicnn-0.1.0-py3-none-any.whl /tmp/parity_in.npz tests/data/musicnn_parity.npz
    # 3. the numpy forward pass against it (tests/test_musicnn.py asserts the same)
    .venv/bin/python benchmarks/musicnn_parity.py compare tests/data/musicnn_parity.npz

The fixture keeps the input as float16 mel power (the network's input is its log_compress),
the names, and the original's tags and penultimate layer.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PATCH, N_MELS, GENERATED_S = 187, 96, 4.0


def _mel16(y16k: np.ndarray) -> np.ndarray:
    """(frames, 96) float16 mel power, framed as librosa's centred STFT (musicdb's own code)."""
    from musicdb.analysis import musicnn

    padded = np.pad(y16k, musicnn.N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, musicnn.N_FFT)[:: musicnn.HOP]
    from musicdb.analysis.features import hann_window

    spectrum = np.fft.rfft(frames * hann_window(musicnn.N_FFT), axis=1)
    mel = (spectrum.real**2 + spectrum.imag**2).astype(np.float32) @ musicnn.mel_basis()
    return np.minimum(mel, np.finfo(np.float16).max).astype(np.float16)


def _generated(sr: int) -> dict[str, np.ndarray]:
    t = np.arange(int(GENERATED_S * sr)) / sr
    rng = np.random.default_rng(13)
    clicks = np.zeros_like(t)
    for beat in np.arange(0, GENERATED_S, 0.5):  # 120 BPM
        i = int(beat * sr)
        clicks[i : i + 80] = np.hanning(80)
    chord = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0))
    return {"tones": chord, "noise": 0.3 * rng.standard_normal(t.size), "clicks": clicks,
            "silence": np.zeros_like(t), "short_1s": 0.5 * np.sin(2 * np.pi * 440 * t[:sr])}


def inputs(corpus: Path, out: Path, count: int) -> None:
    import soxr

    from musicdb.analysis.embedding import repeat_pad
    from musicdb.audio.decode import decode

    names, patches = [], []
    files = sorted(p for p in corpus.rglob("*") if p.suffix in {".ogg", ".mp3", ".flac", ".wav"})
    for path in files[:: max(1, len(files) // count)][:count]:
        y = soxr.resample(decode(path).y, 22050, 16000).astype(np.float32)
        mel = _mel16(y)
        middle = max(0, len(mel) // 2 - PATCH // 2)
        names.append(f"{path.parent.name}/{path.name}")
        patches.append(repeat_pad(mel[middle : middle + PATCH]))
    for name, y in _generated(16000).items():
        names.append(name)
        patches.append(repeat_pad(_mel16(y.astype(np.float32)))[:PATCH])
    np.savez_compressed(out, names=np.array(names), mel16=np.stack(patches).astype(np.float16))
    print(f"{len(names)} patches -> {out}")


def original(wheel: Path, inputs_npz: Path, out: Path) -> None:
    import os

    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.compat.v1.layers needs Keras 2 (tf-keras)
    import tensorflow as tf

    data = np.load(inputs_npz, allow_pickle=False)
    mel16 = data["mel16"]
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as whl:
        whl.extractall(tmp, [m for m in whl.namelist() if m.startswith("musicnn/")])
        sys.path.insert(0, tmp)
        from musicnn import models  # the wheel's own network definition

        tf.compat.v1.disable_eager_execution()
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):  # as musicnn.extractor.extractor builds it
            x = tf.compat.v1.placeholder(tf.float32, [None, PATCH, N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            y, *_, penultimate = models.define_model(x, is_training, "MSD_musicnn", 50)
            tags = tf.nn.sigmoid(y)
        with tf.compat.v1.Session() as sess:
            tf.compat.v1.train.Saver().restore(sess, f"{tmp}/musicnn/MSD_musicnn/")
            # extractor.py's log compression, in float32 (see musicnn.log_compress)
            logmel = np.log10(10000 * mel16.astype(np.float32) + 1)
            t, p = sess.run([tags, penultimate], {x: logmel, is_training: False})
    np.savez_compressed(out, names=data["names"], mel16=mel16, tags=t.astype(np.float32),
                        penultimate=p.astype(np.float32),
                        source=np.array(f"{wheel.name}, tensorflow {tf.__version__}"))
    print(f"original musicnn on {len(mel16)} patches -> {out} ({out.stat().st_size:,} bytes)")


def compare(fixture: Path) -> None:
    from musicdb.analysis import musicnn

    data = np.load(fixture, allow_pickle=False)
    penultimate, tags = musicnn.forward(musicnn.log_compress(data["mel16"]))
    print(f"{len(tags)} patches ({data['source']}): max |tag difference| "
          f"{np.abs(tags - data['tags']).max():.2e}, max |penultimate difference| "
          f"{np.abs(penultimate - data['penultimate']).max():.2e}")
    for name, row in zip(data["names"], data["tags"], strict=True):
        top = np.argsort(row)[::-1][:3]
        print(f"  {name:45} " + ", ".join(f"{musicnn.MSD_TAGS[i]} {row[i]:.2f}" for i in top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("inputs")
    p.add_argument("corpus", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--count", type=int, default=6)
    p = sub.add_parser("original")
    p.add_argument("wheel", type=Path)
    p.add_argument("inputs", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("fixture", type=Path)
    args = parser.parse_args()
    if args.step == "inputs":
        inputs(args.corpus, args.out, args.count)
    elif args.step == "original":
        original(args.wheel, args.inputs, args.out)
    else:
        compare(args.fixture)


if __name__ == "__main__":
    main()
