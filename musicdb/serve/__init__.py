"""`musicdb serve`: the library over HTTP, read-only.

protocol (the endpoint contract), render (payloads as subsonic-response XML or JSON), auth and
users (who may call), snapshot (the in-memory copy every request reads), app (the Starlette
application: /rest/* dispatch, the explorer's routes), and one module per endpoint group
(system, browse, sonic, media, playlists, explorer).
"""
