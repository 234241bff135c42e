// The history section: /history.json drawn as time-series charts with the vendored uPlot (no CDN).
// The whole history is read once, then only newer points (?since=) every few seconds; each chart's
// element carries data-points and data-series, what it draws now, for a reader or a test to check.
// Loaded after dashboard.js, whose $ and number it uses.
"use strict";

(() => {
  const HISTORY_POLL_MS = 5000;
  const KEPT_S = 24 * 3600;
  const GAP_INTERVALS = 3; // no line across a gap this many intervals long (the worker was down)
  const HEIGHT = 150;
  const SLOT_COLOURS = ["#e3b341", "#a371f7", "#39c5cf", "#ff7b72", "#7ee787", "#ffa657", "#d2a8ff", "#79c0ff"];
  const CHARTS = [
    { key: "kudos_per_hour", title: "Kudos / hr", colour: "#58a6ff", digits: 0 },
    { key: "images_per_minute", title: "Images / min", colour: "#3fb950", digits: 2 },
    { key: "megapixelsteps_per_second", title: "MPS/s", colour: "#bc8cff", digits: 2 },
    { key: "slot_duty", title: "Slot duty %", colour: "#d29922", digits: 0, percent: true, bySlot: true },
    { key: "faults", title: "Faults per interval", colour: "#f85149", digits: 0, bars: true },
    { key: "queue_depth", title: "Queue depth", colour: "#79c0ff", digits: 0 },
    { key: "kudos_per_kwh", title: "Kudos / kWh", colour: "#56d364", digits: 0, missing: "needs GPU power readings" },
  ];

  // Everything read so far: one list of times, and each series' values (and each slot's duty) at those times.
  const history = { interval: 30, times: [], values: {}, slots: {} };
  const charts = new Map(); // key → { spec, element, plot, slotCount }
  let since = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function merge(answer) {
    history.interval = answer.interval_s;
    const fresh = answer.series[CHARTS[0].key].map((point) => point[0]);
    const start = history.times.length;
    history.times.push(...fresh);
    for (const spec of CHARTS) {
      const column = (history.values[spec.key] ||= new Array(start).fill(null));
      const points = answer.series[spec.key]; // a series the worker does not send yet reads as not measured
      column.push(...(points ? points.map((point) => point[1]) : fresh.map(() => null)));
    }
    for (const [slot, points] of Object.entries(answer.slot_duty_by_slot || {})) {
      const at = new Map(points.map(([t, duty]) => [t, duty]));
      const column = (history.slots[slot] ||= new Array(start).fill(null));
      column.push(...fresh.map((t) => (at.has(t) ? at.get(t) : null)));
    }
    for (const column of Object.values(history.slots)) {
      while (column.length < history.times.length) column.push(null);
    }
    if (fresh.length) since = fresh[fresh.length - 1];
    forgetBefore(since - KEPT_S);
  }

  function forgetBefore(horizon) {
    let old = 0;
    while (old < history.times.length && history.times[old] < horizon) old++;
    if (old === 0) return;
    history.times.splice(0, old);
    for (const column of [...Object.values(history.values), ...Object.values(history.slots)]) column.splice(0, old);
  }

  // uPlot's data for one chart: [times, series...], with a null point in each long gap so no line spans it.
  function dataOf(spec) {
    const scale = spec.percent ? 100 : 1;
    const columns = [history.values[spec.key] || []];
    if (spec.bySlot) columns.push(...Object.keys(history.slots).sort((a, b) => a - b).map((s) => history.slots[s]));
    const data = [[], ...columns.map(() => [])];
    history.times.forEach((t, i) => {
      if (i > 0 && t - history.times[i - 1] > GAP_INTERVALS * history.interval) {
        data[0].push(history.times[i - 1] + history.interval);
        columns.forEach((_, c) => data[c + 1].push(null));
      }
      data[0].push(t);
      columns.forEach((column, c) => data[c + 1].push(column[i] === null ? null : column[i] * scale));
    });
    return data;
  }

  function seriesOf(spec) {
    const main = { label: spec.title, stroke: spec.colour, width: 2, spanGaps: false };
    if (spec.bars && uPlot.paths.bars) Object.assign(main, { paths: uPlot.paths.bars({ size: [0.8, 6] }), fill: spec.colour });
    const series = [{}, main];
    if (spec.bySlot) {
      main.label = "mean";
      for (const slot of Object.keys(history.slots).sort((a, b) => a - b)) {
        series.push({ label: `slot ${slot}`, stroke: SLOT_COLOURS[slot % SLOT_COLOURS.length], width: 1, dash: [4, 3] });
      }
    }
    return series;
  }

  // An axis label that fits: 12k rather than 12,000.
  function compact(value) {
    if (Math.abs(value) >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
    if (Math.abs(value) >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
    return String(+value.toFixed(2));
  }

  function options(spec, width) {
    const axis = { stroke: "#8d99a6", grid: { stroke: "#262d36", width: 1 }, ticks: { stroke: "#262d36", width: 1 }, font: "11px system-ui, sans-serif" };
    return {
      width, height: HEIGHT,
      series: seriesOf(spec),
      axes: [axis, { ...axis, size: 44, values: (u, ticks) => ticks.map(compact) }],
      scales: { y: { range: (u, min, max) => [0, Math.max(max || 0, spec.percent ? 100 : 1)] } },
      legend: { show: Boolean(spec.bySlot) },
      cursor: { drag: { x: false, y: false } },
    };
  }

  function build(spec) {
    const element = el("figure", "chart");
    element.id = `chart-${spec.key}`;
    const caption = el("figcaption", null, `${spec.title} `);
    caption.append(el("span", "latest figure-small", "–"), el("span", "note missing", ""));
    const plot = el("div", "plot");
    element.append(caption, plot);
    $("charts").append(element);
    return { spec, element, plot, uplot: null, slotCount: -1 };
  }

  function draw(chart) {
    const spec = chart.spec;
    const slotCount = spec.bySlot ? Object.keys(history.slots).length : 0;
    const data = dataOf(spec);
    if (chart.uplot === null || slotCount !== chart.slotCount) {
      if (chart.uplot) chart.uplot.destroy(); // the series changed (a slot more): a new chart
      chart.uplot = new uPlot(options(spec, chart.plot.clientWidth || 300), data, chart.plot);
      chart.slotCount = slotCount;
    } else {
      chart.uplot.setData(data);
    }
    const values = (history.values[spec.key] || []).filter((v) => v !== null);
    const latest = values.length ? values[values.length - 1] * (spec.percent ? 100 : 1) : null;
    chart.element.querySelector(".latest").textContent = latest === null ? "–" : number(latest, spec.digits);
    chart.element.querySelector(".missing").textContent = values.length || !spec.missing ? "" : spec.missing;
    chart.element.dataset.points = String(values.length);
    chart.element.dataset.series = String(chart.uplot.series.length - 1);
  }

  async function pollHistory() {
    try {
      const query = since === null ? "" : `?since=${since}`;
      const response = await fetch(`/history.json${query}`, { cache: "no-store", credentials: "same-origin" });
      if (response.ok) {
        merge(await response.json());
        $("history-interval").textContent = String(Math.round(history.interval));
        for (const chart of charts.values()) draw(chart);
      }
    } finally {
      setTimeout(pollHistory, HISTORY_POLL_MS);
    }
  }

  for (const spec of CHARTS) charts.set(spec.key, build(spec));
  new ResizeObserver(() => {
    for (const chart of charts.values()) {
      if (chart.uplot) chart.uplot.setSize({ width: chart.plot.clientWidth, height: HEIGHT });
    }
  }).observe($("charts"));
  pollHistory();
})();
