"""Synthetic audio for the demo library and the tests: tones, clicks, noise, tagged files."""

from __future__ import annotations

from pathlib import Path

import mutagen
import numpy as np
import soundfile as sf

SR = 44100
FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
           ".opus": ("OGG", "OPUS"), ".mp3": ("MP3", "MPEG_LAYER_III"), ".aiff": ("AIFF", "PCM_16")}


def tone(freq_hz: float, seconds: float, *, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def clicks(bpm: float, seconds: float, *, sr: int = SR, amp: float = 0.9) -> np.ndarray:
    """Short decaying noise bursts on every beat."""
    y = np.zeros(int(seconds * sr), np.float32)
    burst = np.random.default_rng(1).uniform(-1, 1, int(0.01 * sr)) * np.exp(
        -np.linspace(0, 6, int(0.01 * sr)))
    for start in (np.arange(0, seconds, 60.0 / bpm) * sr).astype(int):
        end = min(len(y), start + len(burst))
        y[start:end] += amp * burst[: end - start]
    return y


def noise(seconds: float, *, sr: int = SR, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    return (amp * np.random.default_rng(seed).uniform(-1, 1, int(seconds * sr))).astype(np.float32)


def write_audio(path: Path, y: np.ndarray, *, sr: int = SR) -> Path:
    """Write by extension, block by block (one large Vorbis write crashes soundfile 0.14)."""
    fmt, subtype = FORMATS[path.suffix.lower()]
    data = y if y.ndim == 2 else y[:, np.newaxis]
    with sf.SoundFile(path, "w", samplerate=sr, channels=data.shape[1], format=fmt,
                      subtype=subtype) as f:
        for start in range(0, len(data), 10 * sr):
            f.write(data[start : start + 10 * sr])
    return path


def tag(path: Path, **tags: str) -> Path:
    """Write easy tags (artist=, album=, title=, genre=, albumartist=, tracknumber=, date=)."""
    audio = mutagen.File(path, easy=True)
    if audio is None:
        raise ValueError(f"{path}: mutagen cannot tag this file")
    if audio.tags is None:
        audio.add_tags()
    for key, value in tags.items():
        audio[key] = value
    audio.save()
    return path


# The demo's four made-up artists: each a recipe with its own character.
def _drone(rng: np.random.Generator, seconds: float) -> np.ndarray:
    root = rng.uniform(90, 180)
    return sum(tone(root * r, seconds, amp=0.15) for r in (1, 1.5, 2, 3)) * (
        0.7 + 0.3 * tone(rng.uniform(0.1, 0.3), seconds, amp=1.0))


def _machine(rng: np.random.Generator, seconds: float) -> np.ndarray:
    return clicks(rng.uniform(100, 140), seconds) + noise(seconds, amp=0.02,
                                                          seed=int(rng.integers(1e6)))


def _garden(rng: np.random.Generator, seconds: float) -> np.ndarray:
    swell = 0.5 + 0.5 * np.sin(np.linspace(0, rng.uniform(4, 12), int(seconds * SR)))
    return (noise(seconds, amp=0.25, seed=int(rng.integers(1e6))) * swell).astype(np.float32)


def _bleeps(rng: np.random.Generator, seconds: float) -> np.ndarray:
    step = 60.0 / rng.uniform(110, 130) / 2
    notes = [tone(440 * 2 ** (rng.integers(-12, 12) / 12), step, amp=0.3)
             for _ in range(int(seconds / step))]
    y = np.concatenate(notes)
    beat = clicks(120, len(y) / SR + 1, amp=0.5)[: len(y)]
    return y + beat


DEMO_ARTISTS = {"Drone Choir": _drone, "Click Machine": _machine, "Noise Garden": _garden,
                "Björk-ish Bleeps": _bleeps}


def demo_library(folder: Path, *, songs_per_artist: int = 4, seconds: float = 40.0,
                 seed: int = 7) -> list[Path]:
    """A small labelled library: <folder>/<artist>/<album>/<nn title>.flac, tagged."""
    rng = np.random.default_rng(seed)
    paths = []
    for artist, recipe in DEMO_ARTISTS.items():
        album_dir = folder / artist / "First Album"
        album_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, songs_per_artist + 1):
            path = album_dir / f"{n:02d} Song {n}.flac"
            if not path.exists():
                y = np.clip(recipe(rng, seconds), -1, 1).astype(np.float32)
                write_audio(path, y)
                tag(path, artist=artist, album="First Album", title=f"Song {n}",
                    tracknumber=str(n), genre="Synthetic", date="2026")
            paths.append(path)
    return paths
