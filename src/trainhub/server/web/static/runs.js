// trainhub dashboard: the panels of runs reported by ultralytics 8.4 — the console (colours
// rendered, new lines live), the live progress bars, and the final curves and confusion matrix.
// Everything is built with DOM calls and canvas drawing: no inline styles, no HTML strings.
"use strict";
(function () {
  const PALETTE = ["#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#ec4899",
    "#14b8a6", "#f97316", "#6366f1", "#84cc16"];
  const MAX_CLASS_CURVES = 10;
  const CURVES = {
    pr_curve: { title: "Precision-recall", x: "recall", y: "precision" },
    f1_curve: { title: "F1 by confidence", x: "confidence", y: "F1" },
    precision_curve: { title: "Precision by confidence", x: "confidence", y: "precision" },
    recall_curve: { title: "Recall by confidence", x: "confidence", y: "recall" },
  };

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  async function fetchJSON(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  // ---- ANSI colours ----------------------------------------------------------------------
  // SGR sequences become classes (ansi-fg-31, ansi-bold, ...); every other escape is dropped.
  const ESCAPES = /\x1b\[([0-9;]*)m|\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]/g;

  function applyCodes(style, text) {
    const codes = text === "" ? [0] : text.split(";").map(Number);
    codes.forEach((code) => {
      if (code === 0) { style.fg = null; style.bold = style.dim = style.italic = style.underline = false; }
      else if (code === 1) style.bold = true;
      else if (code === 2) style.dim = true;
      else if (code === 3) style.italic = true;
      else if (code === 4) style.underline = true;
      else if (code === 22) style.bold = style.dim = false;
      else if (code === 23) style.italic = false;
      else if (code === 24) style.underline = false;
      else if (code === 39) style.fg = null;
      else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) style.fg = code;
    });
  }

  function classesOf(style) {
    const names = [];
    if (style.fg !== null) names.push("ansi-fg-" + style.fg);
    ["bold", "dim", "italic", "underline"].forEach((k) => { if (style[k]) names.push("ansi-" + k); });
    return names.join(" ");
  }

  function ansiFragment(text) {
    const fragment = document.createDocumentFragment();
    const style = { fg: null, bold: false, dim: false, italic: false, underline: false };
    let last = 0;
    const push = (part) => {
      if (!part) return;
      const classes = classesOf(style);
      if (!classes) { fragment.append(part); return; }
      const span = document.createElement("span");
      span.className = classes;
      span.textContent = part;
      fragment.append(span);
    };
    ESCAPES.lastIndex = 0;
    let match;
    while ((match = ESCAPES.exec(text)) !== null) {
      push(text.slice(last, match.index));
      last = ESCAPES.lastIndex;
      if (match[1] !== undefined) applyCodes(style, match[1]);
    }
    push(text.slice(last));
    return fragment;
  }

  // ---- console ---------------------------------------------------------------------------
  function consolePanel(root) {
    const text = document.getElementById("console-text");
    const progress = document.getElementById("console-progress");
    const empty = document.getElementById("console-empty");
    const follow = document.getElementById("console-follow");
    const state = { last: null, loading: false, again: false };

    function showProgress(frames) {
      progress.replaceChildren();
      (frames || []).forEach((frame, i) => {
        if (i) progress.append("\n");
        progress.append(ansiFragment(frame));
      });
      progress.hidden = !(frames && frames.length);
    }

    function append(chunks) {
      chunks.forEach(([id, content]) => {
        if (content) text.append(ansiFragment(content), "\n");
        state.last = id;
      });
      if (chunks.length && empty) empty.hidden = true;
      root.dataset.chunks = String((Number(root.dataset.chunks) || 0) + chunks.length);
      if (follow.checked) text.scrollTop = text.scrollHeight;
    }

    async function load() {
      if (state.loading) { state.again = true; return; }
      state.loading = true;
      try {
        let more = true;
        while (more) {
          const after = state.last === null ? "" : "?after=" + state.last;
          const data = await fetchJSON(root.dataset.src + after);
          append(data.chunks);
          showProgress(data.progress);
          more = data.more && data.chunks.length > 0;
        }
      } catch (err) {
        console.warn(err);
      } finally {
        state.loading = false;
        if (state.again) { state.again = false; load(); }
      }
    }

    window.addEventListener("trainhub:console", (event) => {
      if (event.detail && event.detail.newest !== state.last) load();
    });
    window.addEventListener("trainhub:run", (event) => {
      if (event.detail) showProgress(event.detail.progress);
    });
    load();
  }

  // ---- final results ---------------------------------------------------------------------
  function figure(parent, kind, title) {
    const fig = document.createElement("figure");
    fig.dataset.plot = kind;
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    fig.append(caption);
    parent.append(fig);
    return fig;
  }

  function mean(rows, i) {
    let sum = 0;
    rows.forEach((row) => { sum += row[i]; });
    return rows.length ? sum / rows.length : null;
  }

  function curveChart(parent, plot, names) {
    const spec = CURVES[plot.type];
    const rows = Array.isArray(plot.y[0]) ? plot.y : [plot.y];
    const classes = plot.classes || rows.map((_, i) => i);
    const label = (i) => (names[classes[i]] || "class " + classes[i]) +
      (plot.ap ? " " + Number(Array.isArray(plot.ap[i]) ? plot.ap[i][0] : plot.ap[i]).toFixed(3) : "");
    const shown = rows.length <= MAX_CLASS_CURVES ? rows : [];
    const series = [{ label: spec.x }].concat(shown.map((_, i) => ({
      label: label(i), stroke: PALETTE[i % PALETTE.length], width: 1,
    })), [{ label: "all classes", stroke: cssVar("--fg"), width: 3 }]);
    const data = [plot.x].concat(shown, [plot.x.map((_, i) => mean(rows, i))]);
    const fig = figure(parent, plot.type, spec.title);
    const width = Math.max(280, fig.clientWidth - 8);
    new uPlot({
      width: width,
      height: 240,
      scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
      axes: [{ label: spec.x, stroke: cssVar("--muted") }, { label: spec.y, stroke: cssVar("--muted") }],
      series: series,
    }, data, fig);
  }

  function matrixTable(matrix, labels) {
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "The confusion matrix as a table (rows: predicted, columns: true)";
    const table = document.createElement("table");
    table.className = "list compact";
    const head = document.createElement("tr");
    head.append(document.createElement("th"));
    labels.forEach((name) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = name;
      head.append(th);
    });
    table.append(head);
    matrix.forEach((row, r) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = labels[r];
      tr.append(th);
      row.forEach((value) => {
        const td = document.createElement("td");
        td.textContent = Number.isInteger(value) ? String(value) : Number(value).toFixed(2);
        tr.append(td);
      });
      table.append(tr);
    });
    details.append(summary, table);
    return details;
  }

  function confusionMatrix(parent, plot, names) {
    const matrix = plot.matrix;
    const n = matrix.length;
    if (!n) return;
    const labels = matrix.map((_, i) => (i < n - 1 ? names[i] || "class " + i : "background"));
    const fig = figure(parent, "confusion_matrix", "Confusion matrix (rows: predicted, columns: true)");
    const cell = Math.max(14, Math.min(48, Math.floor(420 / n)));
    const margin = 90;
    const canvas = document.createElement("canvas");
    canvas.id = "confusion-matrix";
    canvas.width = margin + n * cell + 8;
    canvas.height = margin + n * cell + 8;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "Confusion matrix of " + n + " classes; the table below has the numbers");
    fig.append(canvas, matrixTable(matrix, labels));
    const ctx = canvas.getContext("2d");
    const peak = Math.max(1e-9, ...matrix.flat());
    const fg = cssVar("--fg");
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = fg;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    labels.forEach((name, i) => {
      ctx.fillText(name.slice(0, 12), margin - 4, margin + i * cell + cell / 2);
      ctx.save();
      ctx.translate(margin + i * cell + cell / 2, margin - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillText(name.slice(0, 12), 0, 0);
      ctx.restore();
    });
    ctx.textAlign = "center";
    matrix.forEach((row, r) => {
      row.forEach((value, c) => {
        const share = value / peak;
        ctx.fillStyle = "rgba(59, 130, 246, " + (0.08 + 0.92 * share).toFixed(3) + ")";
        ctx.fillRect(margin + c * cell, margin + r * cell, cell - 1, cell - 1);
        if (cell >= 24 && value) {
          ctx.fillStyle = share > 0.55 ? "#ffffff" : fg;
          const shownValue = Number.isInteger(value) ? String(value) : value.toFixed(2);
          ctx.fillText(shownValue, margin + c * cell + cell / 2, margin + r * cell + cell / 2);
        }
      });
    });
  }

  async function results(root) {
    if (root.dataset.loaded === "yes" || root.dataset.loading) return;
    root.dataset.loading = "1";
    try {
      const data = await fetchJSON(root.dataset.src);
      if (!data.plots || !data.plots.length) return;
      const grid = document.getElementById("results-charts");
      grid.replaceChildren();
      const names = data.classNames || [];
      const byType = {};
      data.plots.forEach((plot) => { if (plot && plot.type) byType[plot.type] = plot; });
      ["pr_curve", "f1_curve", "precision_curve", "recall_curve"].forEach((kind) => {
        const plot = byType[kind];
        if (plot && Array.isArray(plot.x) && Array.isArray(plot.y)) curveChart(grid, plot, names);
      });
      if (byType.confusion_matrix && Array.isArray(byType.confusion_matrix.matrix)) {
        confusionMatrix(grid, byType.confusion_matrix, names);
      }
      root.hidden = false;
      root.dataset.loaded = "yes";
    } catch (err) {
      console.warn(err);
    } finally {
      delete root.dataset.loading;
    }
  }

  function runState(event) {
    const cell = document.querySelector("[data-field=run-state]");
    if (!cell || !event) return;
    const stop = document.querySelector("form[data-stop]");
    if (stop && event.state !== "running") stop.hidden = true;  // nothing left to stop
    const shown = event.state === "running" ? event.liveness : event.state;
    cell.className = "status status-" + shown;
    cell.textContent = shown;
  }

  const consoleRoot = document.getElementById("console");
  if (consoleRoot) consolePanel(consoleRoot);
  const resultsRoot = document.getElementById("results");
  if (resultsRoot) {
    if (resultsRoot.dataset.loaded === "no") results(resultsRoot);
    window.addEventListener("trainhub:run", (event) => {
      runState(event.detail);
      if (event.detail && event.detail.results) results(resultsRoot);
    });
  }
  window.trainhubAnsi = ansiFragment;  // for tests of the colour rendering
})();
