// trainhub dashboard: uPlot charts of a model's metrics (grouped, synced zoom, smoothing, log
// scale for losses, live refresh) and the overlay chart of the compare page.
"use strict";
(function () {
  const PALETTE = ["#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#ec4899",
    "#14b8a6", "#f97316", "#6366f1", "#84cc16"];
  const HEIGHT = 180;
  const BATCH = 6; // charts built per task
  let firstPaint = false;

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function markFirstPaint() {
    if (firstPaint) return;
    firstPaint = true;
    performance.mark("trainhub:first-chart");
  }

  function axes() {
    const stroke = cssVar("--muted");
    const grid = { stroke: cssVar("--line"), width: 1 };
    return [{ stroke: stroke, grid: grid, ticks: grid }, { stroke: stroke, grid: grid, ticks: grid, size: 60 }];
  }

  async function fetchJSON(url) {
    // No extra headers: the model page preloads its chart data and this request must match it.
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
    if (!response.ok) throw new Error("chart data: HTTP " + response.status);
    return response.json();
  }

  function withParams(url, params) {
    const u = new URL(url, window.location.origin);
    Object.entries(params).forEach(([k, v]) => { if (v !== null && v !== undefined) u.searchParams.set(k, v); });
    return u.pathname + u.search;
  }

  // Exponential moving average with debiasing (TensorBoard's smoothing); gaps stay gaps.
  function smooth(values, weight) {
    if (!weight) return values;
    let last = 0;
    let n = 0;
    return values.map((v) => {
      if (v === null) return null;
      n += 1;
      last = last * weight + (1 - weight) * v;
      return last / (1 - Math.pow(weight, n));
    });
  }

  function isLoss(name) { return /loss/i.test(name); }

  // ---- model page ------------------------------------------------------------------------
  function modelCharts(root) {
    const controls = document.querySelector(".chart-controls");
    const smoothInput = document.getElementById("smooth");
    const smoothOut = document.getElementById("smooth-value");
    const logInput = document.getElementById("logscale");
    const state = { data: null, view: null, plots: new Map(), names: "", syncing: false, loading: null, again: false };

    function xs(data) { return data.epochs.map((e) => e + 1); }

    function columns(name) {
      const raw = state.data.series[name];
      const log = logInput.checked && isLoss(name);
      const clean = log ? raw.map((v) => (v !== null && v > 0 ? v : null)) : raw;
      return [xs(state.data), clean, smooth(clean, Number(smoothInput.value))];
    }

    function zoomAll(min, max, source) {
      state.syncing = true;
      state.plots.forEach((plot) => { if (plot !== source) plot.setScale("x", { min: min, max: max }); });
      state.syncing = false;
    }

    async function zoomTo(min, max) {
      state.view = { first: Math.max(0, Math.floor(min) - 1), last: Math.ceil(max) - 1 };
      zoomAll(min, max, null);
      if (state.data.downsampled) {
        await load();
        zoomAll(min, max, null);
      }
    }

    function resetZoom() {
      state.view = null;
      load(true);
    }

    function options(name, color, width) {
      const log = logInput.checked && isLoss(name);
      return {
        title: name,
        width: width,
        height: HEIGHT,
        scales: { x: { time: false }, y: { distr: log ? 3 : 1 } },
        axes: axes(),
        legend: { live: true },
        cursor: { sync: { key: "trainhub" }, drag: { x: true, y: false, setScale: false } },
        series: [
          { label: "epoch" },
          { label: "raw", stroke: color + "66", width: 1, spanGaps: true },
          { label: "smoothed", stroke: color, width: 2, spanGaps: true },
        ],
        hooks: {
          draw: [markFirstPaint],
          setSelect: [(u) => {
            if (u.select.width < 3) return;
            const min = u.posToVal(u.select.left, "x");
            const max = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoomTo(min, max);
          }],
        },
      };
    }

    // Lay out every figure at once, then draw the charts a few at a time so that the first ones
    // paint while the rest are still being built.
    async function build() {
      const generation = (state.generation = (state.generation || 0) + 1);
      state.plots.forEach((plot) => plot.destroy());
      state.plots.clear();
      root.replaceChildren();
      const figures = [];
      Object.entries(state.data.groups).forEach(([group, names]) => {
        const section = document.createElement("section");
        section.className = "group";
        const heading = document.createElement("h3");
        heading.textContent = group === "other" ? "other metrics" : group;
        const grid = document.createElement("div");
        grid.className = "grid";
        section.append(heading, grid);
        root.append(section);
        names.forEach((name) => {
          const figure = document.createElement("figure");
          figure.dataset.metric = name;
          grid.append(figure);
          figures.push(figure);
        });
      });
      for (let i = 0; i < figures.length; i += 1) {
        if (i > 0 && i % BATCH === 0) {
          await new Promise((resolve) => setTimeout(resolve, 0));
          if (generation !== state.generation) return;
        }
        const figure = figures[i];
        const name = figure.dataset.metric;
        const width = Math.max(260, figure.clientWidth - 8);
        const plot = new uPlot(options(name, PALETTE[i % PALETTE.length], width), columns(name), figure);
        plot.over.addEventListener("dblclick", resetZoom);
        state.plots.set(name, plot);
      }
      performance.mark("trainhub:charts-ready");
    }

    // New columns for every chart; without resetScales the zoom stays and only paths are redrawn.
    function update(resetScales) {
      state.plots.forEach((plot, name) => {
        plot.setData(columns(name), resetScales);
        if (!resetScales) plot.redraw();
      });
    }

    async function load(resetScales) {
      if (state.loading) { state.again = true; return state.loading; }
      const url = withParams(root.dataset.src, state.view || {});
      state.loading = fetchJSON(url).then((data) => {
        state.data = data;
        state.version = JSON.stringify(data.version);
        root.dataset.total = String(data.total);  // epochs loaded so far (tests read it)
        const names = Object.keys(data.series).join("|");
        const empty = document.querySelector("[data-field=no-metrics]");
        if (names && empty) empty.remove();
        if (names !== state.names) { state.names = names; build(); } else update(resetScales !== false && !state.view);
        controls.hidden = !names;
      }).catch((err) => { console.warn(err); }).finally(() => {
        state.loading = null;
        if (state.again) { state.again = false; load(); }
      });
      return state.loading;
    }

    smoothInput.addEventListener("input", () => { smoothOut.textContent = smoothInput.value; update(false); });
    logInput.addEventListener("change", () => { if (state.data) build(); });
    document.getElementById("reset-zoom").addEventListener("click", resetZoom);
    window.addEventListener("trainhub:metrics", (event) => {
      if (JSON.stringify(event.detail) !== state.version) load();
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        state.plots.forEach((plot) => plot.setSize({ width: Math.max(260, plot.root.parentElement.clientWidth - 8), height: HEIGHT }));
      }, 150);
    });
    load();
  }

  // ---- compare page ----------------------------------------------------------------------
  async function compareChart(root) {
    const data = await fetchJSON(root.dataset.src);
    const ids = Object.keys(data.series);
    const series = [{ label: "epoch" }].concat(ids.map((id, i) => ({
      label: data.names[id] || id, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true,
    })));
    const options = {
      title: data.metric,
      width: Math.max(300, root.clientWidth - 8),
      height: 360,
      scales: { x: { time: false } },
      axes: axes(),
      series: series,
      hooks: { draw: [markFirstPaint] },
    };
    const columns = [data.epochs.map((e) => e + 1)].concat(ids.map((id) => data.series[id]));
    new uPlot(options, columns, root);
  }

  const charts = document.getElementById("charts");
  if (charts) modelCharts(charts);
  const overlay = document.getElementById("compare-chart");
  if (overlay) compareChart(overlay).catch((err) => console.warn(err));
})();
