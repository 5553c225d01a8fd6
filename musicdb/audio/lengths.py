"""Is the decoded file whole? The length each container states, and when a shortfall is a cut.

A partial download decodes without an error into a shorter song; only the length the file
states (where it states one) tells the two apart.
"""

from __future__ import annotations

from pathlib import Path

from mutagen import MutagenError
from mutagen.mp3 import MPEGInfo, VBRIHeader, VBRIHeaderError, XingHeader, XingHeaderError
from mutagen.ogg import OggPage

from musicdb.errors import DecodeError

# Where the declared length is an estimate (from a bitrate, from an Ogg file's last page) a
# file that decodes to less than this share of it is truncated; a decoding error that leaves
# at least this share (a damaged last packet, seen in real game music) keeps the song.
MIN_DECODED_SHARE = 0.9
# Where the header states the exact length (FLAC's sample count, an MP3's Xing/Info/VBRI frame
# count) only a damaged last packet may be missing: a file cut at 95 % is truncated too.
EXACT_LENGTH_SHARE = 0.99
LAST_PACKET_S = 0.2


def check_ogg_end(path: Path) -> None:
    """A complete Ogg stream ends with a page flagged end-of-stream; a cut file lacks it.

    Ogg states no length anywhere (decoders take it from the last page present), so the
    missing flag is the only sign that a Vorbis or Opus file was cut short.
    """
    try:
        with path.open("rb") as f:
            last = OggPage.find_last(f, OggPage(f).serial)
    except (MutagenError, OSError, EOFError):
        return  # not a readable Ogg stream: the decoders say what is wrong with it
    if last is not None and not last.last:
        raise DecodeError(path, "truncated: the Ogg stream stops before its end-of-stream page "
                          "(the file was cut short, e.g. by an interrupted download or copy)")


def mp3_states_length(path: Path) -> bool:
    """Whether an MP3's first frame holds a Xing/Info or VBRI header with its frame count.

    Without one every decoder estimates the length from the file size, so a cut file looks
    complete: its truncation cannot be seen.
    """
    try:
        with path.open("rb") as f:
            info = MPEGInfo(f)
            if info.layer != 3:
                return False
            for header, not_there in ((XingHeader, XingHeaderError),
                                      (VBRIHeader, VBRIHeaderError)):
                f.seek(info.frame_offset + header.get_offset(info))
                try:
                    return header(f).frames > 0
                except not_there:
                    continue
    except (MutagenError, OSError, EOFError):
        return False
    return False


def check_length(path: Path, decoded_s: float, declared_s: float, *, exact: bool) -> None:
    """Truncated when clearly less than the declared length decoded.

    An exact declared length allows only a damaged last packet's loss; an estimate (from a
    bitrate, or the last page of an Ogg file) the MIN_DECODED_SHARE margin.
    """
    if declared_s <= 0:
        return
    needed = (EXACT_LENGTH_SHARE * declared_s - LAST_PACKET_S if exact
              else MIN_DECODED_SHARE * declared_s)
    if decoded_s < needed:
        raise DecodeError(path, f"truncated: decoded {decoded_s:.1f} s of the "
                          f"{declared_s:.1f} s its header declares")
