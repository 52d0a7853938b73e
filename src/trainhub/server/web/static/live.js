// trainhub dashboard: apply server-sent events to the models list and the model page.
"use strict";
(function () {
  const th = window.trainhub;
  let source = null;

  function statusNode(event) {
    const span = document.createElement("span");
    span.className = "status status-" + event.status;
    span.dataset.field = "status";
    span.textContent = event.label;
    if (event.status === "offline" || event.status === "stale") {
      if (event.lastHeartbeat) span.append(" since ", th.when(event.lastHeartbeat));
      else span.append(" (no heartbeat yet)");
    }
    return span;
  }

  // Write the fields of a summary event into the elements marked data-field inside `root`.
  function applySummary(root, event) {
    root.querySelectorAll("[data-field]").forEach((el) => {
      const field = el.dataset.field;
      if (field === "status") el.replaceWith(statusNode(event));
      else if (field === "epoch") el.textContent = event.epoch;
      else if (field === "best") el.textContent = event.best === null ? "-" : event.best;
      else if (field === "lastHeartbeat") el.replaceChildren(th.when(event.lastHeartbeat));
      else if (field === "name" && el.textContent !== event.name) el.textContent = event.name;
    });
  }

  function agentRow(agent) {
    const tr = document.createElement("tr");
    const platform = agent.protocol === "platform";  // a Platform run: no heartbeat, silences
    const every = (platform ? "no heartbeat; silent after " : "") + Math.round(agent.interval) + " s";
    const online = platform ? agent.liveness : (agent.online ? "online" : "offline");
    const cells = [agent.name, agent.state, every, null, online];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 3) td.append(th.when(agent.last_seen));
      else td.textContent = text;
      tr.append(td);
    });
    return tr;
  }

  function applyAgents(agents) {
    const body = document.querySelector("[data-field=agents]");
    if (!body || !agents.length) return;
    body.replaceChildren(...agents.map(agentRow));
  }

  function notice(root, text) {
    const note = document.createElement("p");
    note.className = "notice";
    note.setAttribute("role", "status");
    note.textContent = text;
    root.prepend(note);
  }

  // The server refused the stream (429: too many live pages open; 401: signed out): the browser
  // does not retry such an answer, so say so instead of silently showing stale values.
  function stopped(root) {
    if (root.dataset.liveStopped) return;
    root.dataset.liveStopped = "1";
    notice(root, "Live updates stopped: too many pages with live updates are open, " +
      "or the session ended. Close some of them and reload this page.");
  }

  function connect(root, url, handlers) {
    if (source) source.close();
    const current = new EventSource(url);
    source = current;
    Object.entries(handlers).forEach(([name, handler]) => {
      current.addEventListener(name, (e) => handler(JSON.parse(e.data)));
    });
    current.addEventListener("signed-out", () => { window.location.assign("/login"); });
    current.addEventListener("error", () => {
      if (current.readyState === EventSource.CLOSED && source === current) stopped(root);
    });
  }

  function refreshList(list) {
    window.htmx.ajax("GET", window.location.href, {
      target: "#models", select: "#models", swap: "outerHTML",
    });
  }

  function watchList() {
    const list = document.getElementById("models");
    if (!list || !list.dataset.events) return;
    connect(list, list.dataset.events, {
      row: (event) => {
        const row = list.querySelector('tr[data-id="' + event.id + '"]');
        if (row) applySummary(row, event);
      },
      list: (event) => {
        // A newer model than the first one shown: fetch the table again (first page only).
        if (list.dataset.newest !== undefined && !new URL(window.location).searchParams.get("after")
            && event.newest && event.newest !== list.dataset.newest) refreshList(list);
      },
      removed: (event) => {
        const row = list.querySelector('tr[data-id="' + event.id + '"]');
        if (row) row.remove();
      },
    });
  }

  function watchModel() {
    const model = document.querySelector("article.model[data-events]");
    if (!model) return;
    connect(model, model.dataset.events, {
      model: (event) => {
        applySummary(model, event);
        applyAgents(event.agents || []);
      },
      metrics: (event) => {
        window.dispatchEvent(new CustomEvent("trainhub:metrics", { detail: event }));
      },
      console: (event) => {
        window.dispatchEvent(new CustomEvent("trainhub:console", { detail: event }));
      },
      run: (event) => {
        window.dispatchEvent(new CustomEvent("trainhub:run", { detail: event }));
      },
      weights: (event) => {
        const section = document.getElementById("weights");
        if (section && section.dataset.versions !== event.versions) {
          document.getElementById("weights-changed").hidden = false;
        }
      },
      gone: () => {
        notice(model, "This model was deleted or is no longer visible to you.");
        source.close();
      },
      exports: (event) => {
        window.dispatchEvent(new CustomEvent("trainhub:exports", { detail: event }));
      },
    });
  }

  document.addEventListener("htmx:afterSwap", watchList);
  window.addEventListener("pagehide", () => { if (source) source.close(); });
  watchList();
  watchModel();
})();
