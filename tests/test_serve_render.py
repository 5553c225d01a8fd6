"""The subsonic-response rendering rule (musicdb/serve/render.py), XML and JSON alike."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from musicdb.serve import render
from musicdb.serve.protocol import API_VERSION, SubsonicError

NS = "{http://subsonic.org/restapi}"
PAYLOAD = {"lyrics": {"artist": "A & B", "value": "line <1>\nline 2"},
           "license": {"valid": True, "trial": False},
           "openSubsonicExtensions": [{"name": "formPost", "versions": [1, 2]}],
           "song": {"title": "bell\x07 and \ufffe", "missing": None}}


def test_xml_follows_the_rule():
    response = render.ok(PAYLOAD, as_json=False)
    assert response.media_type == "application/xml"
    root = ET.fromstring(response.body)
    assert root.tag == f"{NS}subsonic-response"
    assert root.attrib["status"] == "ok"
    assert root.attrib["version"] == API_VERSION
    assert root.attrib["openSubsonic"] == "true"
    lyrics = root.find(f"{NS}lyrics")
    assert lyrics.attrib == {"artist": "A & B"}
    assert lyrics.text == "line <1>\nline 2"  # "value" is the element's text
    assert root.find(f"{NS}license").attrib == {"valid": "true", "trial": "false"}
    extension = root.find(f"{NS}openSubsonicExtensions")
    assert [v.text for v in extension.findall(f"{NS}versions")] == ["1", "2"]
    song = root.find(f"{NS}song")
    assert song.attrib == {"title": "bell\ufffd and \ufffd"}  # no character XML cannot hold


def test_json_is_the_same_dict_without_nones():
    response = render.ok(PAYLOAD, as_json=True)
    assert response.media_type == "application/json"
    body = json.loads(response.body)["subsonic-response"]
    assert body["status"] == "ok"
    assert body["openSubsonic"] is True
    assert body["type"] == "musicdb"
    assert body["lyrics"] == PAYLOAD["lyrics"]
    assert body["license"] == {"valid": True, "trial": False}
    assert body["openSubsonicExtensions"] == [{"name": "formPost", "versions": [1, 2]}]
    assert "missing" not in body["song"]


def test_errors_are_http_200_and_failed():
    for as_json in (True, False):
        response = render.error(SubsonicError(70, "Song not found"), as_json=as_json)
        assert response.status_code == 200
        if as_json:
            body = json.loads(response.body)["subsonic-response"]
            assert body["status"] == "failed"
            assert body["error"] == {"code": 70, "message": "Song not found"}
        else:
            root = ET.fromstring(response.body)
            assert root.attrib["status"] == "failed"
            assert root.find(f"{NS}error").attrib == {"code": "70", "message": "Song not found"}
