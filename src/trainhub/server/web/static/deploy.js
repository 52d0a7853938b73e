// trainhub dashboard: the model page's Export panel (request an export, follow its state live)
// and Preview panel (send an image, draw the detections over it, show the JSON answer).
// Both forms work without this script: the export form as a plain post, the preview as a page.
"use strict";
(function () {
  const csrf = document.body.dataset.csrf || "";
  const PALETTE = 10; // classes cycle through .c0 ... .c9 (app.css)

  function signIn() {
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
  }

  async function answerOf(response) {
    try { return await response.json(); } catch (err) { return {}; }
  }

  function show(el, text) {
    el.textContent = text;
    el.hidden = !text;
  }

  // --- Export panel ---------------------------------------------------------------------------

  function watchExports() {
    const panel = document.getElementById("exports");
    if (!panel) return;
    const form = document.getElementById("export-form");
    let busy = false;
    let again = false;

    // Fetch the history again (it holds freshly signed links) and put it in place.
    async function refresh() {
      const response = await fetch(panel.dataset.src, { headers: { Accept: "text/html" } });
      if (response.status === 401) { signIn(); return; }
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("export-history");
      const current = document.getElementById("export-history");
      if (fresh && current) current.replaceWith(document.adoptNode(fresh));
    }

    async function sync() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        do { again = false; await refresh(); } while (again);
      } catch (err) {
        // a dropped connection: the next live event tries again
      } finally {
        busy = false;
      }
    }

    window.addEventListener("trainhub:exports", (event) => {
      const current = document.getElementById("export-history");
      if (current && current.dataset.version !== event.detail.version) sync();
    });

    if (!form) return;
    const status = document.getElementById("export-status");
    const error = document.getElementById("export-error");
    const button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      show(error, "");
      button.disabled = true;
      status.textContent = "Requesting…";
      try {
        const response = await fetch(form.action, {
          method: "POST",
          body: new URLSearchParams(new FormData(form)),
          headers: { Accept: "application/json", "X-CSRF-Token": csrf },
        });
        const body = await answerOf(response);
        if (response.status === 401) { signIn(); return; }
        if (response.ok && body.success) {
          status.textContent = body.message;
          await sync();
          status.textContent = ""; // the history shows the export's state from here on
        } else {
          status.textContent = "";
          show(error, body.message || "The export could not be requested (HTTP " + response.status + ").");
        }
      } catch (err) {
        status.textContent = "";
        show(error, "The connection broke; try again.");
      } finally {
        button.disabled = false;
      }
    });
  }

  // --- Preview panel --------------------------------------------------------------------------

  function percent(value, size) {
    return (100 * value / size).toFixed(3) + "%";
  }

  function label(result) {
    return result.name + " " + Number(result.confidence).toFixed(2);
  }

  function labelNode(result) {
    const tag = document.createElement("span");
    tag.className = "preview-label";
    tag.textContent = label(result);
    return tag;
  }

  // An axis-aligned box with its label, placed in percent of the image so it follows its size.
  function boxNode(result, record) {
    const box = result.box;
    const el = document.createElement("div");
    el.className = "preview-box c" + (Number(result.class) % PALETTE);
    el.style.left = percent(box.x1, record.width);
    el.style.top = percent(box.y1, record.height);
    el.style.width = percent(box.x2 - box.x1, record.width);
    el.style.height = percent(box.y2 - box.y1, record.height);
    el.append(labelNode(result));
    return el;
  }

  // The label of an oriented box (drawn in the SVG), at the box's top-left extreme.
  function cornerNode(result, record) {
    const box = result.box;
    const el = document.createElement("div");
    el.className = "preview-corner c" + (Number(result.class) % PALETTE);
    el.style.left = percent(Math.min(box.x1, box.x2, box.x3, box.x4), record.width);
    el.style.top = percent(Math.min(box.y1, box.y2, box.y3, box.y4), record.height);
    el.append(labelNode(result));
    return el;
  }

  const SVG = "http://www.w3.org/2000/svg";

  function svgNode(name, attributes) {
    const el = document.createElementNS(SVG, name);
    Object.entries(attributes).forEach(([key, value]) => el.setAttribute(key, value));
    return el;
  }

  function polygon(xs, ys, className) {
    const points = xs.map((x, i) => x + "," + ys[i]).join(" ");
    return svgNode("polygon", { points: points, class: className });
  }

  // Oriented boxes, segments and keypoints go into one SVG in the image's own pixels.
  function shapes(record) {
    const svg = svgNode("svg", {
      viewBox: "0 0 " + record.width + " " + record.height,
      preserveAspectRatio: "none",
      class: "preview-shapes",
    });
    record.results.forEach((result) => {
      const c = "c" + (Number(result.class) % PALETTE);
      const box = result.box || {};
      if (box.x4 !== undefined) {
        svg.append(polygon([box.x1, box.x2, box.x3, box.x4], [box.y1, box.y2, box.y3, box.y4],
          "preview-obb " + c));
      }
      if (result.segments && result.segments.x) {
        svg.append(polygon(result.segments.x, result.segments.y, "preview-segment " + c));
      }
      if (result.keypoints && result.keypoints.x) {
        result.keypoints.x.forEach((x, i) => {
          const visible = result.keypoints.visible ? result.keypoints.visible[i] : 1;
          if (visible < 0.5) return;
          svg.append(svgNode("circle", {
            cx: x, cy: result.keypoints.y[i], r: Math.max(record.width, record.height) / 150,
            class: "preview-point " + c,
          }));
        });
      }
    });
    return svg;
  }

  function draw(overlay, record) {
    const nodes = [shapes(record)];
    record.results.forEach((result) => {
      const box = result.box;
      if (!box) return; // a classifier's answer: listed in the summary
      nodes.push(box.x4 === undefined ? boxNode(result, record) : cornerNode(result, record));
    });
    overlay.replaceChildren(...nodes);
  }

  function summary(record) {
    const n = record.results.length;
    const hasBoxes = record.results.some((r) => r.box);
    let text = n + " result" + (n === 1 ? "" : "s") + " (" + record.task + ", " + record.runtime +
      ", size " + record.imgsz + ", " + record.width + "x" + record.height + " pixels)";
    if (!hasBoxes && n) text += ": " + record.results.map(label).join(", ");
    return text;
  }

  function watchPreview() {
    const form = document.getElementById("preview-form");
    if (!form) return;
    const input = document.getElementById("preview-image");
    const drop = document.getElementById("preview-drop");
    const status = document.getElementById("preview-status");
    const error = document.getElementById("preview-error");
    const result = document.getElementById("preview-result");
    const image = document.getElementById("preview-img");
    const overlay = document.getElementById("preview-overlay");
    const json = document.getElementById("preview-json");
    const button = form.querySelector("button[type=submit]");
    const maxBytes = Number(form.dataset.maxBytes);
    let file = null;

    function fail(message) {
      status.textContent = "";
      show(error, message);
    }

    // Show the chosen image at once (as a data: URL: the page's policy allows no blob: images).
    function choose(chosen) {
      file = chosen || null;
      show(error, "");
      overlay.replaceChildren();
      json.textContent = "";
      document.getElementById("preview-summary").textContent = "";
      if (!file) { result.hidden = true; return; }
      const reader = new FileReader();
      reader.addEventListener("load", () => {
        image.src = reader.result;
        result.hidden = false;
      });
      reader.readAsDataURL(file);
    }

    input.addEventListener("change", () => choose(input.files[0]));
    ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    }));
    ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => {
      drop.classList.remove("dragging");
    }));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) return;
      try { input.files = files; } catch (err) { /* older browsers: `file` is sent instead */ }
      choose(files[0]);
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!file) { fail("Choose or drop an image first."); return; }
      if (maxBytes && file.size > maxBytes) {
        fail("The image has " + file.size + " bytes; this server takes at most " + maxBytes +
          " (max_image_bytes): resize it first.");
        return;
      }
      const data = new FormData(form);
      data.set("image", file, file.name || "image");
      show(error, "");
      button.disabled = true;
      status.textContent = "Running the model…";
      try {
        const response = await fetch(form.action, {
          method: "POST",
          body: data,
          headers: { Accept: "application/json", "X-CSRF-Token": csrf },
        });
        const body = await answerOf(response);
        if (response.status === 401) { signIn(); return; }
        if (!response.ok || !body.success) {
          fail(body.message || "The prediction failed (HTTP " + response.status + ").");
          return;
        }
        const record = body.data;
        draw(overlay, record);
        json.textContent = JSON.stringify(record, null, 2);
        document.getElementById("preview-summary").textContent = summary(record);
        result.hidden = false;
        status.textContent = "";
      } catch (err) {
        fail("The connection broke during the prediction; try again.");
      } finally {
        button.disabled = false;
      }
    });
  }

  watchExports();
  watchPreview();
})();
