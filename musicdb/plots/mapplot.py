"""A map as one self-contained HTML page: plotly (inline), an audio player and neighbour lists.

One trace per label (or album), so the legend toggles it on click and isolates it on double
click; each keeps its stable colour (musicdb.maps.colors). Clicking a point plays its song (a
snippet from its start) from the local file and lists its nearest songs.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from musicdb.errors import MapError
from musicdb.maps.colors import label_styles
from musicdb.maps.runs import MapRun

WEBGL_ABOVE = 3000  # points; SVG scatter gets sluggish beyond a few thousand
METHOD_NAMES = {"svd": "SVD", "tsne": "t-SNE", "umap": "UMAP"}


def title(run: MapRun) -> str:
    """Method, parameters, feature set and what was counted."""
    n_songs = len(set(run.song_id.tolist()))
    what = (f"{n_songs:,} songs" if run.unit == "song"
            else f"{len(run.xy):,} snippets of {n_songs:,} songs")
    params = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(run.params.items())
                       if k != "perplexity_asked")
    colour = " · colour by album" if run.color_by == "album" else ""
    return (f"{METHOD_NAMES[run.method]} of {what} · feature set {run.feature_set} · "
            f"labels by {run.label_from}{colour}<br><sup>{params} · run {run.run_id}</sup>")


def figure(run: MapRun):
    """One trace per group (label or album), WebGL beyond WEBGL_ABOVE points."""
    import plotly.graph_objects as go

    Trace = go.Scattergl if len(run.xy) > WEBGL_ABOVE else go.Scatter
    groups = run.groups
    fig = go.Figure()
    styles = label_styles(groups)
    for name in sorted(set(groups), key=str.casefold):
        members = [i for i, g in enumerate(groups) if g == name]
        custom = [[i, run.title[i] or "", run.artist[i] or "", run.album[i] or "",
                   Path(run.path[i]).name if run.path[i] else "(no file)", run.label[i],
                   f"<br>snippet {run.snippet[i]} from {run.start_s[i]:.0f} s"
                   if run.snippet[i] >= 0 else ""] for i in members]
        fig.add_trace(Trace(
            x=run.xy[members, 0], y=run.xy[members, 1], mode="markers", name=name,
            customdata=custom,
            marker={"color": styles[name][0], "symbol": styles[name][1], "size": 7,
                    "opacity": 0.8, "line": {"width": 0}},
            hovertemplate="<b>%{customdata[1]}</b><br>artist %{customdata[2]}<br>"
                          "album %{customdata[3]}<br>file %{customdata[4]}<br>"
                          "label %{customdata[5]}%{customdata[6]}<extra></extra>"))
    fig.update_layout(title={"text": title(run)}, height=800, hovermode="closest",
                      legend={"title": {"text": "album" if run.color_by == "album"
                                        else f"label ({run.label_from})"},
                              "itemsizing": "constant"},
                      xaxis={"showticklabels": False, "title": None},
                      yaxis={"showticklabels": False, "title": None})
    return fig


def page_data(run: MapRun) -> dict:
    """What the page's script needs per point and per song (audio as file:// URLs)."""
    songs = {}
    for sid, s in run.songs.items():
        path = Path(s["path"]) if s["path"] else None
        songs[str(sid)] = {"title": s["title"], "artist": s["artist"], "album": s["album"],
                           "src": path.as_uri() if path and path.is_file() else None}
    points = [{"song": int(sid), "snippet": int(snip), "start": float(start),
               "neighbours": [[n, round(d, 3)] for n, d in near]}
              for sid, snip, start, near in zip(run.song_id, run.snippet, run.start_s,
                                                run.neighbours, strict=True)]
    return {"run": run.run_id, "points": points, "songs": songs}


def write_page(run: MapRun, out: Path) -> None:
    """The whole page, plotly.js inline: it opens offline from any folder."""
    plot = figure(run).to_html(full_html=False, include_plotlyjs=True, div_id="map",
                               config={"responsive": True, "displaylogo": False})
    # "</" inside a <script> would end it early.
    data = json.dumps(page_data(run), ensure_ascii=False).replace("</", "<\\/")
    plain = title(run).replace("<br><sup>", " · ").replace("</sup>", "")
    text = PAGE.format(title=html.escape(plain), plot=plot, data=data, script=SCRIPT)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MapError(f"cannot write {out}: {exc.strerror or exc}") from exc


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
/* Grid tracks exist before the panel is parsed, so plotly sizes the plot to its column. */
body {{ font-family: system-ui, sans-serif; margin: 0; display: grid;
        grid-template-columns: minmax(0, 1fr) 300px; }}
#plot {{ min-width: 0; }}
#panel {{ box-sizing: border-box; padding: 12px; border-left: 1px solid #ddd; font-size: 14px;
          overflow-wrap: anywhere; }}
#panel audio {{ width: 100%; margin: 8px 0; }}
#panel li {{ cursor: pointer; margin: 3px 0; }}
#panel li:hover {{ text-decoration: underline; }}
#note {{ color: #a33; }}
</style></head>
<body>
<div id="plot">{plot}</div>
<aside id="panel">
  <div id="now">Click a point to listen to it.</div>
  <audio id="player" controls preload="none"></audio>
  <button id="play" type="button" hidden>&#9654; Play</button>
  <div id="note"></div>
  <h3>Nearest songs</h3>
  <ol id="neighbours"></ol>
  <p><small>Nearest in the standardised feature space (distance in standard deviations),
  among the songs of this map. Click one to play it.</small></p>
</aside>
<script>const MAP = {data};</script>
<script>{script}</script>
</body></html>
"""

SCRIPT = """
(function () {
  const gd = document.getElementById('map');
  const player = document.getElementById('player');
  const button = document.getElementById('play');
  const note = document.getElementById('note');
  const list = document.getElementById('neighbours');
  const now = document.getElementById('now');
  const name = s => (s.artist || '?') + ' \\u2013 ' + (s.title || '?');

  function play(song, start) {
    button.hidden = true;
    note.textContent = '';
    if (!song.src) {
      player.removeAttribute('src');
      player.dataset.start = '';
      note.textContent = 'No audio file for this song: the map works, without sound.';
      return;
    }
    player.src = song.src;
    player.dataset.start = String(start);
    const seek = () => { player.currentTime = start; };
    if (player.readyState >= 1) seek();
    else player.addEventListener('loadedmetadata', seek, {once: true});
    const attempt = player.play();
    if (attempt) attempt.catch(e => {
      if (e && e.name === 'NotAllowedError') {   // no user gesture: let the user start it
        button.hidden = false;
        note.textContent = 'Press play to listen.';
      } else {
        note.textContent = 'Cannot play this file' + (e && e.message ? ': ' + e.message : '');
      }
    });
  }

  function select(i) {
    const p = MAP.points[i];
    const song = MAP.songs[p.song];
    now.textContent = name(song) + (p.snippet >= 0 ? ' \\u00b7 snippet ' + p.snippet +
                                    ' from ' + p.start.toFixed(0) + ' s' : '');
    list.replaceChildren(...p.neighbours.map(([sid, d]) => {
      const li = document.createElement('li');
      li.textContent = name(MAP.songs[sid]) + ' (' + d.toFixed(2) + ')';
      li.dataset.song = sid;
      li.addEventListener('click', () => play(MAP.songs[sid], 0));
      return li;
    }));
    window.musicdbSelected = i;
    play(song, p.start);
  }

  button.addEventListener('click', () => {
    button.hidden = true;
    player.play().catch(e => { note.textContent = 'Cannot play: ' + (e && e.message); });
  });
  player.addEventListener('error', () => {
    if (player.getAttribute('src')) note.textContent = 'The audio file cannot be played (moved?).';
  });
  gd.on('plotly_click', ev => {
    const pt = ev && ev.points && ev.points[0];
    if (pt && pt.customdata) select(pt.customdata[0]);
  });
  window.musicdbSelect = select;
})();
"""
