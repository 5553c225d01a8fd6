"""A payload dict as a `subsonic-response`, in XML or JSON (f=json).

The rule, one for both formats: a dict becomes an element, a scalar value an attribute
(True/False as "true"/"false" in XML, JSON booleans in JSON), a list repeated child elements
of the key's name (a list of scalars: elements whose text is each value), the key "value" the
element's text (e.g. lyrics). None values are left out. JSON keeps the dict as it is, under
`{"subsonic-response": {"status": ..., "version": ..., ...}}`. Errors are HTTP 200 with
status "failed", as the Subsonic specification says.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import orjson
from starlette.responses import Response

from musicdb import __version__
from musicdb.serve.protocol import API_VERSION, SubsonicError

XMLNS = "http://subsonic.org/restapi"
# Characters XML 1.0 cannot hold, even escaped (a tag may contain them).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def envelope(status: str = "ok") -> dict[str, Any]:
    return {"status": status, "version": API_VERSION, "type": "musicdb",
            "serverVersion": __version__, "openSubsonic": True}


def wants_json(params) -> bool:
    return params.get("f") == "json"


def ok(payload: dict[str, Any], *, as_json: bool) -> Response:
    return _response({**envelope("ok"), **payload}, as_json=as_json)


def error(err: SubsonicError, *, as_json: bool) -> Response:
    return _response({**envelope("failed"), "error": {"code": err.code, "message": err.message}},
                     as_json=as_json)


def _response(body: dict[str, Any], *, as_json: bool) -> Response:
    if as_json:
        # orjson: UTF-8 as json.dumps(ensure_ascii=False) writes it, ~5x faster; a float that
        # is not finite (none should be) becomes null, where json would write invalid NaN
        text = orjson.dumps({"subsonic-response": _drop_none(body)})
        return Response(text, media_type="application/json")
    root = ET.Element("subsonic-response", {"xmlns": XMLNS})
    _fill(root, body)
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + text,
                    media_type="application/xml")


def to_xml(body: dict[str, Any]) -> str:
    """The element tree of a body as text (for tests and debugging)."""
    root = ET.Element("subsonic-response", {"xmlns": XMLNS})
    _fill(root, body)
    return ET.tostring(root, encoding="unicode")


def _fill(element: ET.Element, node: dict[str, Any]) -> None:
    for key, value in node.items():
        if value is None:
            continue
        if key == "value" and not isinstance(value, dict | list):
            element.text = _text(value)
        elif isinstance(value, dict):
            _fill(ET.SubElement(element, key), value)
        elif isinstance(value, list | tuple):
            for item in value:
                child = ET.SubElement(element, key)
                if isinstance(item, dict):
                    _fill(child, item)
                elif item is not None:
                    child.text = _text(item)
        else:
            element.set(key, _text(value))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


# The values that need no look inside: no call per value for them (a similar-songs answer
# has ~600; the call per value was half the time of rendering it).
_SCALARS = frozenset({str, int, float, bool})


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v if type(v) in _SCALARS else _drop_none(v)
                for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [v if type(v) in _SCALARS else _drop_none(v) for v in value if v is not None]
    return value
