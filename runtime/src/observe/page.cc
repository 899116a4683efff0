// The dashboard page served at /. Self-contained on purpose: the coordinator often runs where
// nothing outside can be fetched (a lab network, a laptop on a Pi's hotspot), so the charts are
// drawn as SVG by the page's own script, and the page asks only this server for data.

#include "marina/observe/render.h"

namespace marina::observe {
namespace {

constexpr char kPage[] = R"marina(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>marina-edge: fleet</title>
<style>
  :root { --fg: #1d232b; --muted: #5f6b7a; --line: #d8dde3; --bg: #f6f7f9; --card: #fff;
          --blue: #1f6fd1; --red: #c62828; --green: #2e7d32; --orange: #e08a00; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; gap: 16px; align-items: baseline; padding: 12px 20px;
           background: var(--card); border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  #run { color: var(--muted); }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
           background: #e3e7ec; color: var(--fg); white-space: nowrap; }
  .badge.running, .badge.live { background: #dcefdc; color: var(--green); }
  .badge.finished { background: #dde8f7; color: var(--blue); }
  .badge.unreachable, .badge.gone { background: #f8dcdc; color: var(--red); }
  .badge.returned { background: #fff0d0; color: #8a5a00; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  #cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
  .card .k { color: var(--muted); font-size: 12px; }
  .card .v { font-size: 18px; font-variant-numeric: tabular-nums; }
  .charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
  @media (max-width: 900px) { .charts { grid-template-columns: minmax(0, 1fr); } }
  figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px;
           padding: 8px 10px; }
  figure.wide { grid-column: 1 / -1; }
  figcaption { font-weight: 600; margin-bottom: 4px; }
  figcaption .note { font-weight: normal; color: var(--muted); }
  svg { width: 100%; height: auto; display: block; }
  svg text { font-size: 11px; fill: var(--muted); }
  svg .grid { stroke: #eceff2; }
  svg .axis { stroke: #9aa5b1; }
  svg .series { fill: none; stroke: var(--blue); stroke-width: 1.5; }
  svg .empty { font-size: 13px; }
  svg .ev-gone { stroke: var(--red); }
  svg .ev-returned { stroke: var(--green); }
  svg .ev-leave { stroke: var(--orange); }
  .legend span { margin-right: 12px; font-size: 12px; color: var(--muted); }
  .legend i { display: inline-block; width: 12px; height: 3px; vertical-align: middle;
              margin-right: 4px; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
            padding: 8px 10px; }
  section h2 { font-size: 15px; margin: 0 0 6px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  #events { margin: 0; padding-left: 0; list-style: none; max-height: 260px; overflow: auto;
            font-family: ui-monospace, monospace; font-size: 12px; }
  #events li { padding: 1px 0; }
  #events .kind { font-weight: 600; }
  td.key { font-family: ui-monospace, monospace; font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>marina-edge fleet</h1>
  <span id="run">connecting…</span>
  <span id="state" class="badge">connecting</span>
</header>
<main>
  <div id="cards"></div>
  <div class="charts">
    <figure><figcaption>‖∇f(x<sup>k</sup>)‖² by round <span class="note">(log scale)</span></figcaption>
      <svg id="chart-grad-round" viewBox="0 0 640 260" role="img" aria-label="squared gradient norm by round"></svg></figure>
    <figure><figcaption>‖∇f(x<sup>k</sup>)‖² by uplink bits per worker <span class="note">(log scale)</span></figcaption>
      <svg id="chart-grad-bits" viewBox="0 0 640 260" role="img" aria-label="squared gradient norm by bits per worker"></svg></figure>
    <figure class="wide"><figcaption>Participants per round
      <span class="legend"><span><i style="background:var(--red)"></i>gone</span><span><i style="background:var(--green)"></i>returned</span><span><i style="background:var(--orange)"></i>left</span></span></figcaption>
      <svg id="chart-participants" viewBox="0 0 1280 220" role="img" aria-label="participants per round"></svg></figure>
  </div>
  <section><h2>Workers</h2>
    <table id="workers"><thead><tr><th>worker</th><th>state</th><th>replies</th><th>returns</th>
      <th>last seen</th><th>reply latency</th><th>arch</th><th id="key-column" hidden>key</th>
      <th>note</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Events <span class="note" id="events-count"></span></h2><ol id="events"></ol></section>
</main>
<script>
"use strict";
// All state of the page; window.marinaDash lets a person (or a test) look at it.
const S = {
  round: [], grad: [], bits: [], part: [],
  events: [], status: null, nextRound: 0, nextEvent: 0,
  reachable: null, error: "", polls: 0,
};
window.marinaDash = S;
const POLL_MS = 500, PAGE = 20000, SVGNS = "http://www.w3.org/2000/svg";

async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

async function poll() {
  try {
    // Status first: the rows fetched after it are at least as new as the status shown.
    S.status = await getJSON("/api/status");
    for (;;) {
      const rows = await getJSON("/api/log?since=" + S.nextRound + "&limit=" + PAGE);
      for (const r of rows) {
        S.round.push(r.round);
        S.grad.push(r.grad_norm_sq);
        S.bits.push(r.bits_per_worker);
        S.part.push(r.participants);
        S.nextRound = r.round + 1;
      }
      if (rows.length < PAGE) break;
    }
    const ev = await getJSON("/api/events?since=" + S.nextEvent);
    for (const e of ev) S.events.push(e);
    S.nextEvent += ev.length;
    S.reachable = true;
    S.error = "";
  } catch (e) {
    S.reachable = false;  // keep what we have: the run may be over and the server gone
    S.error = String(e);
  }
  S.polls++;
  try { render(); } catch (e) { console.error(e); }
  setTimeout(poll, POLL_MS);
}

function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  let s;
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) s = v.toExponential(3);
  else if (Number.isInteger(v)) s = String(v);
  else s = v.toPrecision(4);
  return unit ? s + " " + unit : s;
}

// Axis labels: short, "2e+5" rather than "2.000e+5".
function tick(v) {
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential() : String(+v.toPrecision(6));
}

function bytes(v) {
  if (v === null || v === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Nice linear ticks between lo and hi.
function linTicks(lo, hi, n) {
  const span = hi - lo || 1, raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => span / s <= n) || 10 * mag;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
  return out;
}

// At most ~2 points per horizontal pixel: per bucket of indices, the lowest and the highest
// point, so a dip of one round stays visible however long the run.
function decimate(xs, ys, buckets) {
  const n = xs.length;
  if (n <= 2 * buckets) return xs.map((x, i) => [x, ys[i]]);
  const out = [], size = n / buckets;
  for (let b = 0; b < buckets; b++) {
    const i0 = Math.floor(b * size), i1 = Math.min(n, Math.floor((b + 1) * size));
    let lo = i0, hi = i0;
    for (let i = i0; i < i1; i++) { if (ys[i] < ys[lo]) lo = i; if (ys[i] > ys[hi]) hi = i; }
    const a = Math.min(lo, hi), c = Math.max(lo, hi);
    out.push([xs[a], ys[a]]);
    if (c !== a) out.push([xs[c], ys[c]]);
  }
  return out;
}

// Draws one series into an SVG; opts: logY, step, yMin, yMax, xLabel, markers [{x, cls, title}].
function drawChart(svg, xs, ys, opts) {
  const W = svg.viewBox.baseVal.width, H = svg.viewBox.baseVal.height;
  const L = 62, R = 12, T = 10, B = 34;
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const px = [], py = [];
  for (let i = 0; i < xs.length; i++) {
    const y = ys[i];
    if (y === null || y === undefined || !Number.isFinite(y) || (opts.logY && y <= 0)) continue;
    px.push(xs[i]);
    py.push(opts.logY ? Math.log10(y) : y);
  }
  svg.dataset.points = String(px.length);
  if (px.length === 0) {
    svg.appendChild(svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty"},
                          opts.empty || "no data yet"));
    return;
  }
  let x0 = px[0], x1 = px[px.length - 1];
  if (x1 <= x0) x1 = x0 + 1;
  let lo = Infinity, hi = -Infinity;  // a loop: spreading 10^5 values into Math.min overflows
  for (const y of py) { if (y < lo) lo = y; if (y > hi) hi = y; }
  let y0 = opts.yMin !== undefined ? opts.yMin : lo;
  let y1 = opts.yMax !== undefined ? opts.yMax : hi;
  if (opts.logY) { y0 = Math.floor(y0); y1 = Math.ceil(y1); }
  if (y1 <= y0) { y0 -= 0.5; y1 += 0.5; }
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  // Grid and labels.
  const yt = opts.logY ? linTicks(y0, y1, 6).filter(Number.isInteger) : linTicks(y0, y1, 5);
  for (const t of yt) {
    svg.appendChild(svgEl("line", {x1: L, x2: W - R, y1: sy(t), y2: sy(t), class: "grid"}));
    svg.appendChild(svgEl("text", {x: L - 6, y: sy(t) + 4, "text-anchor": "end"},
                          opts.logY ? "1e" + t : tick(t)));
  }
  for (const t of linTicks(x0, x1, 6)) {
    svg.appendChild(svgEl("line", {x1: sx(t), x2: sx(t), y1: T, y2: H - B, class: "grid"}));
    svg.appendChild(svgEl("text", {x: sx(t), y: H - B + 15, "text-anchor": "middle"}, tick(t)));
  }
  svg.appendChild(svgEl("line", {x1: L, x2: L, y1: T, y2: H - B, class: "axis"}));
  svg.appendChild(svgEl("line", {x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis"}));
  svg.appendChild(svgEl("text", {x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle"}, opts.xLabel));
  // Event markers under the series.
  for (const m of (opts.markers || [])) {
    if (m.x < x0 || m.x > x1) continue;
    const line = svgEl("line", {x1: sx(m.x), x2: sx(m.x), y1: T, y2: H - B, class: m.cls,
                                "stroke-width": 1.5, "stroke-dasharray": "3 2"});
    line.appendChild(svgEl("title", {}, m.title));
    svg.appendChild(line);
  }
  const pts = decimate(px, py, Math.round(W - L - R));
  let d = "";
  for (let i = 0; i < pts.length; i++) {
    const X = sx(pts[i][0]).toFixed(1), Y = sy(pts[i][1]).toFixed(1);
    if (i === 0) d = "M" + X + " " + Y;
    else if (opts.step) d += "H" + X + "V" + Y;
    else d += "L" + X + " " + Y;
  }
  svg.appendChild(svgEl("path", {d: d, class: "series"}));
}

function card(parent, k, v) {
  const c = el("div", {class: "card"});
  c.appendChild(el("div", {class: "k"}, k));
  c.appendChild(el("div", {class: "v"}, v));
  parent.appendChild(c);
}

function render() {
  const st = S.status;
  const state = document.getElementById("state");
  if (S.reachable === false) {
    state.className = "badge unreachable";
    state.textContent = st && st.finished ? "finished; server gone" : "coordinator unreachable";
    state.title = S.error;
  } else if (st && st.finished) {
    state.className = "badge finished";
    state.textContent = "finished: " + (st.outcome || "run complete");
  } else if (st) {
    state.className = "badge running";
    state.textContent = "running";
  }
  if (!st) return;
  const c = st.config, t = st.totals, m = st.membership;
  document.getElementById("run").textContent =
      c.method + " with " + c.compressor + ", n = " + c.workers + (c.dim ? ", d = " + c.dim : "") +
      (c.resolved ? ", γ = " + fmt(c.gamma) + ", p = " + fmt(c.p) : "") +
      (c.data ? ", data " + c.data : "");
  const cards = document.getElementById("cards");
  cards.textContent = "";
  card(cards, "round", fmt(t.rounds) + " / " + fmt(c.rounds));
  card(cards, "live workers", (m.live === null ? "–" : m.live) + " / " + c.workers +
       (m.min_workers ? " (min " + m.min_workers + ")" : ""));
  card(cards, "participants (last round)", t.participants === null ? "–" : String(t.participants));
  card(cards, "‖∇f‖²", fmt(t.grad_norm_sq));
  card(cards, "loss", fmt(t.loss));
  card(cards, "bits / worker", fmt(t.bits_per_worker));
  card(cards, "wire up / down", bytes(t.wire_bytes_up) + " / " + bytes(t.wire_bytes_down));
  card(cards, "repairs · resyncs · rejected", t.repairs + " · " + t.resyncs + " · " + t.rejected);
  card(cards, "elapsed", fmt(st.time_s, "s"));

  const noGrad = "‖∇f‖² unknown: the coordinator runs without --data";
  drawChart(document.getElementById("chart-grad-round"), S.round, S.grad,
            {logY: true, xLabel: "round", empty: S.round.length ? noGrad : "no rounds yet"});
  drawChart(document.getElementById("chart-grad-bits"), S.bits, S.grad,
            {logY: true, xLabel: "uplink bits per worker", empty: S.round.length ? noGrad : "no rounds yet"});
  const kinds = {gone: "ev-gone", returned: "ev-returned", leave: "ev-leave"};
  const markers = S.events.filter(e => kinds[e.event]).slice(-300).map(e => ({
      x: e.round, cls: kinds[e.event],
      title: "round " + e.round + ": worker " + e.worker + " " + e.event + (e.detail ? " (" + e.detail + ")" : "")}));
  drawChart(document.getElementById("chart-participants"), S.round, S.part,
            {step: true, yMin: 0, yMax: c.workers, xLabel: "round", markers: markers});

  const body = document.querySelector("#workers tbody");
  body.textContent = "";
  // The key column only when the run uses CurveZMQ keys (a plaintext run has none).
  const keyed = m.workers.some(w => w.key);
  document.getElementById("key-column").hidden = !keyed;
  for (const w of m.workers) {
    const tr = el("tr", {"data-worker": w.id, "data-state": w.state, "data-returns": w.returns});
    tr.appendChild(el("td", {}, String(w.id)));
    const s = el("td", {class: "state"});
    s.appendChild(el("span", {class: "badge " + w.state}, w.state));
    if (w.returns > 0 && w.state === "live") {
      s.appendChild(document.createTextNode(" "));
      s.appendChild(el("span", {class: "badge returned"}, "returned" + (w.returns > 1 ? " ×" + w.returns : "")));
    }
    tr.appendChild(s);
    tr.appendChild(el("td", {}, String(w.replies)));
    tr.appendChild(el("td", {}, String(w.returns)));
    tr.appendChild(el("td", {}, w.last_seen_age_s === null ? "never" : w.last_seen_age_s.toFixed(2) + " s ago"));
    tr.appendChild(el("td", {}, w.latency_s === null ? "–" : (w.latency_s * 1000).toFixed(2) + " ms"));
    tr.appendChild(el("td", {}, w.arch || "–"));
    if (keyed)
      tr.appendChild(el("td", {class: "key", title: "fingerprint of its CurveZMQ public key"}, w.key || "–"));
    tr.appendChild(el("td", {}, w.gone_reason || ""));
    body.appendChild(tr);
  }

  const list = document.getElementById("events");
  list.textContent = "";
  document.getElementById("events-count").textContent = "(" + S.events.length + ")";
  for (const e of S.events.slice(-40).reverse()) {
    const li = el("li");
    li.appendChild(document.createTextNode("round " + e.round + " · " + fmt(e.time_s, "s") + " · " +
        (e.worker === undefined ? "" : "worker " + e.worker + " · ")));
    li.appendChild(el("span", {class: "kind"}, e.event));
    if (e.detail) li.appendChild(document.createTextNode(" — " + e.detail));
    list.appendChild(li);
  }
}

poll();
</script>
</body>
</html>
)marina";

}  // namespace

std::string_view dashboard_page() {
  return {kPage, sizeof kPage - 1};
}

}  // namespace marina::observe
