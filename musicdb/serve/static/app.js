// musicdb explorer: plain JavaScript, no build step. Every view is a function of the URL hash
// (#/song/so-12, #/artist/ar-..., #/search/words, #/maps, #/map/3, #/path), so back and
// forward work and a view can be bookmarked. Data comes from the server's /api/ JSON; the
// page builds its DOM from text nodes only (no innerHTML with data from the library).
"use strict";

const view = document.getElementById("view");
const audio = document.getElementById("player");
const nowPlaying = document.getElementById("now-playing");
const queueInfo = document.getElementById("queue-info");

// ---- small helpers -------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {}

async function api(path, params = {}) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch("/api/" + path + (query ? "?" + query : ""),
                               { headers: { Accept: "application/json" } });
  if (response.status === 401) { location.href = "/login"; throw new ApiError("log in first"); }
  const body = await response.json();
  if (!response.ok) throw new ApiError(body.error || response.statusText);
  return body;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function songLink(song) {
  return el("a", { href: "#/song/" + song.id }, song.title || "(untitled)");
}

function artistLink(id, name) {
  return id ? el("a", { href: "#/artist/" + id }, name || "(unknown)") : el("span", {}, name);
}

function playButton(songs, index = 0) {
  return el("button", { class: "play", type: "button", title: "Play",
                        onclick: () => player.play(songs, index) }, "▶");
}

// One row of a song list: play, title, artist, and a distance or duration on the right.
function songRow(song, songs, index) {
  const meta = song.distance !== undefined ? song.distance.toFixed(2) : duration(song.duration);
  return el("li", { "data-id": song.id }, playButton(songs, index),
            el("span", { class: "what" }, songLink(song), " · ",
               artistLink(song.artist_id, song.artist)),
            el("span", { class: "meta" }, meta));
}

function songList(songs, ordered = false) {
  if (!songs.length) return el("p", { class: "muted" }, "None.");
  return el(ordered ? "ol" : "ul", { class: "list songs" },
            songs.map((song, i) => songRow(song, songs, i)));
}

function message(text) {
  return el("p", { class: "message", role: "alert" }, text);
}

// ---- the player: one <audio> for the whole page, with a queue for paths --------------------

const player = {
  queue: [],
  position: -1,
  play(songs, index = 0) {
    this.queue = songs;
    this.position = index;
    this.start();
  },
  start() {
    const song = this.queue[this.position];
    if (!song) return;
    audio.src = song.stream;
    nowPlaying.replaceChildren(el("strong", {}, songLink(song)), " · ",
                               artistLink(song.artist_id, song.artist));
    queueInfo.textContent = this.queue.length > 1
      ? `${this.position + 1} of ${this.queue.length}` : "";
    document.querySelectorAll("li.current").forEach(li => li.classList.remove("current"));
    document.querySelectorAll(`li[data-id="${song.id}"]`)
      .forEach(li => li.classList.add("current"));
    // A refused autoplay (no user gesture yet) leaves the controls for the listener to press.
    audio.play().catch(() => {});
  },
  next() {
    if (this.position + 1 < this.queue.length) { this.position += 1; this.start(); }
  },
};
audio.addEventListener("ended", () => player.next());

// ---- views ---------------------------------------------------------------------------------

async function homeView() {
  const [maps, library] = await Promise.all([api("maps"), api("library")]);
  return [el("h1", {}, "Explore the library"),
          el("p", { class: "sub", id: "library" },
             `${plural(library.songs, "song")} by ${plural(library.artists, "artist")} · `,
             "feature set ",
             `${library.feature_set || "none yet"} · data as of ${library.loaded_at}`),
          el("p", {}, "Search for a song or an artist above, open a stored map, ",
             "or build a path from one song to another."),
          el("div", { class: "actions" },
             el("a", { href: "#/maps" }, `Maps (${maps.runs.length} stored)`),
             el("a", { href: "#/path" }, "Path builder"))];
}

async function searchView(query) {
  document.getElementById("search").value = query;
  const found = await api("search", { q: query });
  return [el("h1", {}, `Search: ${query}`),
          el("div", { class: "columns" },
             el("section", {}, el("h2", {}, `Artists (${found.artists.length})`),
                found.artists.length
                  ? el("ul", { class: "list artists" }, found.artists.map(a => el("li", {},
                      el("span", { class: "what" }, artistLink(a.id, a.name)),
                      el("span", { class: "meta" }, plural(a.song_count, "song")))))
                  : el("p", { class: "muted" }, "None.")),
             el("section", {}, el("h2", {}, `Songs (${found.songs.length})`),
                songList(found.songs)))];
}

async function artistView(id) {
  const data = await api("artist/" + encodeURIComponent(id));
  const a = data.artist;
  return [el("h1", {}, a.name),
          el("p", { class: "sub" },
             `${plural(a.song_count, "song")} · ${plural(a.album_count, "album")}`),
          el("div", { class: "actions" },
             el("button", { type: "button", onclick: () => player.play(data.songs) },
                "▶ Play all")),
          el("div", { class: "columns" },
             el("section", {}, el("h2", {}, "Songs"), songList(data.songs)),
             el("section", {}, el("h2", {}, "Similar artists"),
                data.similar.length
                  ? el("ol", { class: "list similar-artists" }, data.similar.map(s => el("li", {},
                      el("span", { class: "what" }, artistLink(s.id, s.name)),
                      el("span", { class: "meta" }, s.distance.toFixed(2)))))
                  : el("p", { class: "muted" }, data.similar_note || "None.")))];
}

async function songView(id) {
  const data = await api("song/" + encodeURIComponent(id));
  const s = data.song;
  const facts = [["Artist", artistLink(s.artist_id, s.artist)], ["Album", s.album],
                 ["Year", s.year], ["Genre", s.genre], ["Length", duration(s.duration)],
                 ["Label", s.label], ["File", s.path]]
    .filter(([, value]) => value !== null && value !== undefined && value !== "");
  return [el("h1", {}, s.title || "(untitled)"),
          el("p", { class: "sub" }, artistLink(s.artist_id, s.artist)),
          el("div", { class: "actions" },
             el("button", { id: "play-song", type: "button", onclick: () => player.play([s]) },
                "▶ Play"),
             el("button", { class: "secondary", type: "button",
                            onclick: () => { pathEnds.a = s; location.hash = "#/path"; } },
                "Path from here"),
             el("button", { class: "secondary", type: "button",
                            onclick: () => { pathEnds.b = s; location.hash = "#/path"; } },
                "Path to here")),
          el("table", { class: "facts" },
             facts.map(([name, value]) => el("tr", {}, el("th", {}, name), el("td", {}, value)))),
          el("h2", {}, "Similar songs"),
          data.similar.length ? songList(data.similar, true)
                              : el("p", { class: "muted" }, data.similar_note || "None.")];
}

const METHOD_NAMES = { svd: "SVD", tsne: "t-SNE", umap: "UMAP" };
function methodName(method) { return METHOD_NAMES[method] || method; }

async function mapsView() {
  const data = await api("maps");
  if (!data.runs.length) {
    return [el("h1", {}, "Maps"),
            el("p", { class: "muted" }, "No stored map yet: run `musicdb map` once.")];
  }
  return [el("h1", {}, "Maps"),
          el("ul", { class: "list maps" }, data.runs.map(r => el("li", {},
            el("span", { class: "what" }, el("a", { href: "#/map/" + r.run_id },
               `Run ${r.run_id}: ${methodName(r.method)} of ${r.n_points} ${r.unit}s`),
               ` · feature set ${r.feature_set} · labels by ${r.label_from}`),
            el("span", { class: "meta" }, r.created_at))))];
}

// plotly.js (several MB) loads only when a map is opened, from the server itself.
let plotlyLoading = null;
function loadPlotly() {
  if (window.Plotly) return Promise.resolve();
  plotlyLoading ??= new Promise((resolve, reject) => {
    const script = el("script", { src: "/static/plotly.min.js" });
    script.addEventListener("load", resolve);
    script.addEventListener("error", () => reject(new ApiError("plotly.js did not load")));
    document.head.append(script);
  });
  return plotlyLoading;
}

async function mapView(runId) {
  const [data] = await Promise.all([api("maps/" + encodeURIComponent(runId)), loadPlotly()]);
  const r = data.run;
  const plot = el("div", { id: "map" });
  const traces = data.traces.map(t => ({
    type: t.x.length > 3000 ? "scattergl" : "scatter", mode: "markers", name: t.name,
    x: t.x, y: t.y, customdata: t.songs, text: t.text, hoverinfo: "text+name",
    marker: { color: t.color, symbol: t.symbol, size: 8, opacity: 0.85 },
  }));
  const layout = { hovermode: "closest", margin: { t: 20, r: 10, b: 20, l: 10 },
                   legend: { title: { text: `label (${r.label_from})` } },
                   xaxis: { showticklabels: false, zeroline: false },
                   yaxis: { showticklabels: false, zeroline: false } };
  // Drawn once the element is in the page (render calls `mounted`), so plotly sizes the
  // plot to its box.
  const mounted = async () => {
    await Plotly.newPlot(plot, traces, layout, { responsive: true, displaylogo: false });
    plot.on("plotly_click", event => {
      const song = data.songs[event.points[0].customdata];
      if (song) player.play([song]);
    });
    plot.dataset.drawn = "true";
  };
  return { mounted, nodes: [
    el("h1", {}, `Map run ${r.run_id}`),
    el("p", { class: "sub" }, `${methodName(r.method)} of ${r.n_points} ${r.unit}s · feature `,
       `set ${r.feature_set} · labels by ${r.label_from}. Click a point to play its song.`),
    plot] };
}

// The path builder keeps its chosen ends while the listener browses elsewhere.
const pathEnds = { a: null, b: null, n: 12 };

function picker(which, label) {
  const input = el("input", { type: "search", placeholder: "Search a song", id: "pick-" + which,
                              autocomplete: "off", "aria-label": label });
  const chosen = el("div", { class: "chosen", id: "chosen-" + which },
                    pathEnds[which] ? `${pathEnds[which].title} · ${pathEnds[which].artist || ""}`
                                    : "none chosen");
  const results = el("ul", { class: "list", hidden: true });
  let pending = 0;
  input.addEventListener("input", async () => {
    const query = input.value.trim();
    const ticket = ++pending;
    if (!query) { results.hidden = true; return; }
    // Searched once typing pauses, not at every keystroke.
    await new Promise(resolve => setTimeout(resolve, 150));
    if (ticket !== pending) return;
    const found = await api("search", { q: query, artists: 0 });
    if (ticket !== pending) return;  // a newer keystroke's answer is on its way
    results.replaceChildren(...found.songs.map(song => el("li", {
      "data-id": song.id,
      onclick: () => {
        pathEnds[which] = song;
        chosen.replaceChildren(song.title, " · ", song.artist || "");
        results.hidden = true;
        input.value = "";
      } }, el("span", { class: "what" }, song.title, " · ", song.artist || ""))));
    results.hidden = found.songs.length === 0;
  });
  return el("div", { class: "picker" }, el("strong", {}, label), input, chosen, results);
}

function pathView() {
  const n = el("input", { type: "number", id: "path-n", min: 2, max: 100,
                          value: pathEnds.n });
  const out = el("section", { id: "path-result" });
  const build = el("button", { id: "build-path", type: "button", onclick: async () => {
    if (!pathEnds.a || !pathEnds.b) { out.replaceChildren(message("Choose both songs first.")); return; }
    pathEnds.n = Number(n.value);
    const params = { a: pathEnds.a.id, b: pathEnds.b.id, n: n.value };
    try {
      const path = await api("path", params);
      out.replaceChildren(
        el("h2", {}, `${path.songs.length} songs from ${pathEnds.a.title} to ${pathEnds.b.title}`),
        el("div", { class: "actions" },
           el("button", { id: "play-path", type: "button",
                          onclick: () => player.play(path.songs) }, "▶ Play the path"),
           el("a", { id: "save-path", href: "/api/path.m3u8?" + new URLSearchParams(params),
                     download: "" }, "Save as .m3u8")),
        songList(path.songs, true));
    } catch (error) {
      out.replaceChildren(message(error.message));
    }
  } }, "Build the path");
  return [el("h1", {}, "Path builder"),
          el("p", { class: "sub" }, "A sequence of songs that moves smoothly from one song to ",
             "another in feature space: no song twice, one song per artist while the library ",
             "allows."),
          picker("a", "From"), picker("b", "To"),
          el("div", { class: "actions" }, el("label", { class: "inline" }, "Songs", n), build),
          out];
}

// ---- routing -------------------------------------------------------------------------------

const routes = [
  [/^#?\/?$/, homeView],
  [/^#\/search\/(.*)$/, q => searchView(decodeURIComponent(q))],
  [/^#\/artist\/([^/]+)$/, artistView],
  [/^#\/song\/([^/]+)$/, songView],
  [/^#\/maps$/, mapsView],
  [/^#\/map\/(\d+)$/, mapView],
  [/^#\/path$/, pathView],
];

let rendering = 0;
async function render() {
  const ticket = ++rendering;
  const hash = location.hash;
  const route = routes.find(([pattern]) => pattern.test(hash));
  let content;
  try {
    content = route ? await route[1](...hash.match(route[0]).slice(1))
                    : [message(`No page ${hash}`)];
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    content = [message(error.message)];
  }
  if (ticket !== rendering) return;  // the listener moved on while this one loaded
  // A view is its nodes, or { nodes, mounted } when it has work once they are in the page.
  const { nodes, mounted } = Array.isArray(content) ? { nodes: content } : content;
  view.replaceChildren(...nodes);
  window.scrollTo(0, 0);
  if (mounted) await mounted();
  document.body.dataset.view = hash || "#/";
}

document.getElementById("search-form").addEventListener("submit", event => {
  event.preventDefault();
  const query = document.getElementById("search").value.trim();
  if (query) location.hash = "#/search/" + encodeURIComponent(query);
});
window.addEventListener("hashchange", render);

api("session").then(session => {
  if (session.user) {
    document.getElementById("user").textContent = `(${session.user})`;
    document.getElementById("logout").hidden = false;
  }
});
render();
