// Caducée — the charter's live preview in the admin console: as fields change, the form is
// posted to the server, which renders the preview with the portal's own templates (one
// rendering, no copy of the rules here). Without JavaScript, « Prévisualiser » does the same.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("charter-form");
  const preview = document.getElementById("charter-preview");
  if (!form || !preview || !form.dataset.preview) {
    return;
  }
  let timer = null;
  let latest = 0;
  const refresh = async () => {
    const asked = ++latest;
    const body = new URLSearchParams(new FormData(form));
    body.delete("action");
    let response;
    try {
      response = await fetch(form.dataset.preview, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "X-CSRF-Token": form.elements.csrf.value },
      });
    } catch (error) {
      return; // offline: the preview stays as it was
    }
    if (!response.ok || asked !== latest) {
      return;
    }
    const parsed = new DOMParser().parseFromString(await response.text(), "text/html");
    preview.replaceChildren(...parsed.body.childNodes);
  };
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
});
