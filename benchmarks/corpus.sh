#!/usr/bin/env bash
# A real-music benchmark corpus from the free game music in Debian's packages.
#
#   bash benchmarks/corpus.sh [FOLDER]        # default: benchmarks/corpus (git-ignored)
#
# Downloads whichever of the packages below exist (apt-get download: no install, root not
# needed beyond apt's own cache), unpacks them with dpkg -x, keeps the .ogg files that last at
# least MIN_SECONDS (music, not sound effects) as FOLDER/<package>/<file>.ogg, and converts a
# quarter each to mp3 (libmp3lame, 192k, 44.1 kHz), opus (128k, 48 kHz) and flac, so every
# format musicdb decodes natively is exercised and each track exists in exactly one format.
# Idempotent: when FOLDER already holds audio, only the packages that have no folder in it yet
# are fetched (a package added to the list below), then it prints the summary. Packages are
# collected in a temporary folder beside FOLDER and moved into place at the end, so an
# interrupted run leaves nothing half-made. Needs apt-get, dpkg, ffmpeg and ffprobe.
set -euo pipefail

# Each package is one folder, so one label: platformer tunes (supertux), orchestral scores
# (wesnoth), RPG and arcade soundtracks (freedroidrpg, hedgewars), with enough songs in most
# folders for 5-fold grouped cross-validation (benchmarks/quality.py). neverball and pingus
# hold no music of MIN_SECONDS, so they add nothing (the corpus remembers that).
PACKAGES=(supertux-data neverball-data extremetuxracer-data frozen-bubble-data pingus-data
          wesnoth-1.16-music freedroidrpg-data hedgewars-data lincity-ng-data)
MIN_SECONDS=60
OUT=${1:-benchmarks/corpus}
AUDIO_EXT='ogg|mp3|opus|flac'

die() { echo "corpus.sh: $*" >&2; exit 1; }

duration() {  # seconds, as ffprobe reads the container
    ffprobe -v error -show_entries format=duration -of csv=p=0 "$1"
}

has_audio() {
    [[ -d $1 ]] && find "$1" -type f -regextype posix-extended -iregex ".*\.($AUDIO_EXT)" \
        -print -quit | grep -q .
}

summary() {  # files and hours per format, then the total
    find "$1" -type f -regextype posix-extended -iregex ".*\.($AUDIO_EXT)" -print0 |
        while IFS= read -r -d '' f; do printf '%s %s\n' "${f##*.}" "$(duration "$f")"; done |
        awk '{ n[$1]++; s[$1] += $2; N++; S += $2 }
             END { for (k in n) printf "  %-5s %3d files  %6.2f h\n", k, n[k], s[k] / 3600 | "sort"
                   close("sort")
                   printf "  total %3d files  %6.2f h\n", N, S / 3600 }'
}

download() {  # packages $2... into $1; one at a time, so a missing one does not stop the rest
    local dir=$1 pkg
    shift
    # apt's download sandbox (user _apt) must be able to write the folder.
    if [[ $(id -u) == 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$dir"; fi
    for pkg in "$@"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            echo "  $pkg: not in the package lists, skipped (apt-get update?)"
            continue
        fi
        (cd "$dir" && apt-get download -q "$pkg" >/dev/null) || echo "  $pkg: download failed"
    done
}

collect() {  # unpack each .deb in $1 and copy its long .ogg files to $2/<package>/
    local debs=$1 dest=$2 deb pkg tree f name kept
    for deb in "$debs"/*.deb; do
        [[ -e $deb ]] || { echo "  no package could be downloaded"; return; }
        pkg=$(basename "$deb"); pkg=${pkg%%_*}
        tree=$(mktemp -d "$debs/tree.XXXX")
        dpkg -x "$deb" "$tree"
        kept=0
        while IFS= read -r -d '' f; do
            awk -v d="$(duration "$f")" -v m="$MIN_SECONDS" 'BEGIN { exit !(d >= m) }' || continue
            name=$(basename "$f")
            # Same name in two folders of one package: prefix the folder.
            [[ -e $dest/$pkg/$name ]] && name="$(basename "$(dirname "$f")")_$name"
            mkdir -p "$dest/$pkg"
            cp "$f" "$dest/$pkg/$name"
            kept=$((kept + 1))
        done < <(find "$tree" -type f -iname '*.ogg' -print0 | sort -z)
        echo "  $pkg: $kept music files >= ${MIN_SECONDS} s"
        # remembered, so that the next run does not fetch it again
        ((kept > 0)) || touch "$dest/.no-music-$pkg"
        rm -rf "$tree"
    done
}

convert() {  # every 4th file stays ogg; the others become mp3, opus, flac in turn
    local dir=$1 i=0 f target
    local -a args
    while IFS= read -r -d '' f; do
        case $((i++ % 4)) in
            0) continue ;;
            1) target=${f%.ogg}.mp3;  args=(-c:a libmp3lame -b:a 192k -ar 44100) ;;
            2) target=${f%.ogg}.opus; args=(-c:a libopus -b:a 128k -ar 48000) ;;
            3) target=${f%.ogg}.flac; args=(-c:a flac) ;;
        esac
        ffmpeg -v error -nostdin -y -i "$f" -map 0:a:0 "${args[@]}" "$target"
        rm "$f"
    done < <(find "$dir" -type f -name '*.ogg' -print0 | sort -z)
}

main() {
    for tool in apt-get apt-cache dpkg ffmpeg ffprobe; do
        command -v "$tool" >/dev/null || die "$tool is not on PATH"
    done
    local -a wanted=()
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        [[ -d $OUT/$pkg || -e $OUT/.no-music-$pkg ]] || wanted+=("$pkg")
    done
    if has_audio "$OUT" && ((${#wanted[@]} == 0)); then
        echo "corpus already in $OUT, nothing to do:"
        summary "$OUT"
        return
    fi
    if [[ -d $OUT ]] && ! has_audio "$OUT"; then  # an empty folder left from before
        rmdir "$OUT" 2>/dev/null || die "$OUT holds files but no audio: move them away first"
    fi
    mkdir -p "$(dirname "$OUT")"
    WORK=$(mktemp -d "$(dirname "$OUT")/.corpus-build.XXXX")
    trap 'rm -rf "$WORK"' EXIT
    chmod 755 "$WORK"
    mkdir "$WORK/debs" "$WORK/corpus"
    echo "downloading ${wanted[*]}"
    download "$WORK/debs" "${wanted[@]}"
    echo "collecting music"
    collect "$WORK/debs" "$WORK/corpus"
    echo "converting a quarter each to mp3, opus and flac"
    convert "$WORK/corpus"
    mkdir -p "$OUT"
    for pkg in "$WORK/corpus"/*/ "$WORK/corpus"/.no-music-*; do
        [[ -e $pkg ]] && mv "$pkg" "$OUT/"
    done
    has_audio "$OUT" || die "no package held music"
    echo "corpus in $OUT:"
    summary "$OUT"
}

main
