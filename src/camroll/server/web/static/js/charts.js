// Inline SVG charts (no chart library): a horizontal stacked bar and a small column chart.
import { svg, h } from "./format.js";

// parts: [{label, value, cls}], total: the bar's full width (e.g. the quota).
export function stackedBar(parts, total, title) {
  const W = 600, H = 28;
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "bar-chart", role: "img", "aria-label": title, preserveAspectRatio: "none" },
    svg("title", {}, title), svg("rect", { x: 0, y: 0, width: W, height: H, rx: 6, class: "track" }));
  let x = 0;
  for (const p of parts) {
    const w = total > 0 ? Math.max(p.value > 0 ? 2 : 0, (W * p.value) / total) : 0;
    g.append(svg("rect", { x, y: 0, width: Math.min(w, W - x), height: H, class: p.cls }, svg("title", {}, p.label)));
    x += w;
  }
  return g;
}

export function legend(parts) {
  return h("ul", { class: "legend" }, parts.map((p) => h("li", {}, h("span", { class: `swatch ${p.cls}`, "aria-hidden": "true" }), p.label)));
}

// points: [{label, value}] oldest first.
export function columns(points, title) {
  const W = 240, H = 48, gap = 2;
  const max = Math.max(1, ...points.map((p) => p.value));
  const w = points.length ? (W - gap * (points.length - 1)) / points.length : W;
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "col-chart", role: "img", "aria-label": title, preserveAspectRatio: "none" }, svg("title", {}, title));
  points.forEach((p, i) => {
    const ph = p.value ? Math.max(2, (H * p.value) / max) : 1;
    g.append(svg("rect", { x: i * (w + gap), y: H - ph, width: w, height: ph, class: p.value ? "col" : "col zero" },
      svg("title", {}, `${p.label}: ${p.value}`)));
  });
  return g;
}
