"""System methods: ping, getLicense, getOpenSubsonicExtensions, getMusicFolders."""

from __future__ import annotations

from musicdb.serve.protocol import Call, Endpoint

# OpenSubsonic extensions (their names and versions as the specification's pages give them):
# apiKeyAuthentication (auth.py), formPost (app.py reads POSTed forms), sonicSimilarity
# (getSonicSimilarTracks and findSonicPath, sonic.py).
EXTENSIONS = {"apiKeyAuthentication": [1], "formPost": [1], "sonicSimilarity": [1]}


def ping(_call: Call) -> dict:
    return {}


def get_license(_call: Call) -> dict:
    return {"license": {"valid": True}}


def get_open_subsonic_extensions(call: Call) -> dict:
    offered = {name: versions for name, versions in EXTENSIONS.items()
               if name != "sonicSimilarity" or "getSonicSimilarTracks" in _endpoints(call)}
    return {"openSubsonicExtensions": [{"name": name, "versions": versions}
                                       for name, versions in offered.items()]}


def get_music_folders(call: Call) -> dict:
    """One folder per library root, numbered 1..n in root order (Snapshot.roots)."""
    return {"musicFolders": {"musicFolder": [
        {"id": number, "name": root.name or str(root)}
        for number, root in enumerate(call.snapshot.roots, start=1)]}}


def _endpoints(call: Call) -> dict:
    return call.request.app.state.musicdb.endpoints


ENDPOINTS: dict[str, Endpoint] = {
    "ping": ping,
    "getLicense": get_license,
    "getOpenSubsonicExtensions": get_open_subsonic_extensions,
    "getMusicFolders": get_music_folders,
}
