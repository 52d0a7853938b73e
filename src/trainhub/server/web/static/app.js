// trainhub dashboard: copy buttons, confirmations, relative times, the CSRF header for htmx.
"use strict";
(function () {
  const csrf = document.body.dataset.csrf || "";

  function ago(iso) {
    if (!iso) return "never";
    const seconds = Math.floor((Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 5) return "just now";
    const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
    for (const [unit, size] of units) {
      if (seconds >= size) return Math.floor(seconds / size) + " " + unit + " ago";
    }
    return "just now";
  }

  // A <time> element showing how long ago `iso` was (or the text "never").
  function when(iso) {
    if (!iso) return document.createTextNode("never");
    const el = document.createElement("time");
    el.dateTime = iso;
    el.title = iso;
    el.dataset.ago = "";
    el.textContent = ago(iso);
    return el;
  }

  function refreshTimes() {
    document.querySelectorAll("time[data-ago]").forEach((el) => {
      el.textContent = ago(el.dateTime);
    });
  }

  async function copy(button) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const text = source.textContent.trim();
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
    }
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy");
    if (button) copy(button);
  });

  document.addEventListener("submit", (event) => {
    const message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  document.addEventListener("htmx:configRequest", (event) => {
    event.detail.headers["X-CSRF-Token"] = csrf;
  });

  setInterval(refreshTimes, 5000);
  window.trainhub = { csrf: csrf, ago: ago, when: when };
})();
