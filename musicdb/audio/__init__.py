"""Files in: finding audio, reading tags, decoding to mono float32, test signals."""
