// trainhub dashboard: upload a dataset archive with a progress bar (the form works without it).
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const error = document.getElementById("upload-error");
  const button = form.querySelector("button[type=submit]");

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    status.textContent = "";
    progress.hidden = true;
    button.disabled = false;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    error.hidden = true;
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    status.textContent = "Uploading…";
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", window.trainhub.csrf);
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      progress.value = Math.round((e.loaded / e.total) * 100);
      status.textContent = progress.value < 100 ? "Uploading… " + progress.value + "%" : "Checking the archive…";
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (xhr.status >= 200 && xhr.status < 300 && body.success) {
        progress.value = 100;
        status.textContent = "Uploaded: " + body.message;
        window.location.assign("/datasets?notice=uploaded");
        return;
      }
      if (xhr.status === 401) { window.location.assign("/login?next=/datasets"); return; }
      fail(body.message || "The upload failed (HTTP " + xhr.status + ").");
    });
    xhr.addEventListener("error", () => fail("The connection broke during the upload; try again."));
    xhr.send(new FormData(form));
  });
})();
