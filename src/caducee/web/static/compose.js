// Caducée — compose page: the two address books (Professionnels, Patients) with suggestions,
// the « Professionnels » group of the national MSSanté directory, and the channel of every
// recipient shown at a glance, with its profession and structure when the directory lists it.
// No inline script (CSP).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const books = document.querySelector(".books[data-base]");
  if (!books) {
    return;
  }
  const base = books.dataset.base;
  const fields = ["a", "cc", "cci"].map((id) => document.getElementById(id)).filter(Boolean);
  const channels = document.getElementById("canaux");

  const addresses = () =>
    fields.flatMap((field) => field.value.split(",").map((a) => a.trim()).filter(Boolean));

  const showChannels = async () => {
    const found = [];
    for (const address of addresses()) {
      const response = await fetch(`${base}/canal?a=${encodeURIComponent(address)}`, {
        headers: { accept: "application/json" },
      });
      if (response.ok) {
        found.push([address, await response.json()]);
      }
    }
    channels.replaceChildren(
      ...found.map(([address, info]) => {
        const item = document.createElement("li");
        const badge = document.createElement("span");
        badge.className = `channel ${info.canal}`;
        badge.textContent = info.libelle;
        item.append(badge, ` ${address}`);
        if (info.annuaire) {
          const who = document.createElement("span");
          who.className = "directory-entry muted small";
          who.textContent = ` — ${[info.annuaire.nom, info.annuaire.profession,
            info.annuaire.savoir_faire, info.annuaire.structure, info.annuaire.ville]
            .filter(Boolean).join(" · ")}`;
          item.append(who);
        }
        return item;
      }),
    );
  };

  for (const input of books.querySelectorAll("input[data-book]")) {
    const list = document.getElementById(input.getAttribute("list"));
    input.addEventListener("input", async () => {
      const query = input.value.trim();
      const match = [...list.options].find((o) => o.value === query);
      if (match) {
        const to = document.getElementById("a");
        to.value = to.value.trim() ? `${to.value.trim().replace(/,$/, "")}, ${query}` : query;
        input.value = "";
        list.replaceChildren();
        showChannels();
        return;
      }
      if (query.length < 2) {
        return;
      }
      const response = await fetch(
        `${base}/carnet/${input.dataset.book}?q=${encodeURIComponent(query)}`,
        { headers: { accept: "application/json" } },
      );
      if (!response.ok) {
        return;
      }
      const entries = await response.json();
      list.replaceChildren(
        ...entries.map((entry) => {
          const option = document.createElement("option");
          option.value = entry.adresse;
          const details = [entry.profession, entry.structure, entry.ville].filter(Boolean);
          const name = entry.nom ? `${entry.nom} <${entry.adresse}>` : entry.adresse;
          option.label = details.length ? `${name} — ${details.join(", ")}` : name;
          return option;
        }),
      );
    });
  }
  for (const field of fields) {
    field.addEventListener("change", showChannels);
  }
  showChannels();
});

// Drafts saved every 15 s while the message changes, and sending with an upload progress bar.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form.compose[data-draft-url]");
  if (!form) {
    return;
  }
  const draftField = document.getElementById("brouillon");
  const status = document.getElementById("brouillon-etat");
  let dirty = false;
  let saving = false;
  form.addEventListener("input", () => { dirty = true; });

  const saveDraft = async () => {
    if (!dirty || saving) {
      return;
    }
    saving = true;
    dirty = false;
    const data = new FormData(form);
    data.delete("pieces");
    try {
      const response = await fetch(form.dataset.draftUrl, {
        method: "POST",
        body: data,
        headers: { accept: "application/json" },
      });
      if (response.ok) {
        const saved = await response.json();
        draftField.value = String(saved.brouillon);
        status.textContent = `${status.dataset.saved} ${new Date().toLocaleTimeString()}`;
      } else {
        dirty = true;
      }
    } finally {
      saving = false;
    }
  };
  setInterval(saveDraft, 15000);
  form.dataset.autosave = "on";

  const progress = document.getElementById("envoi-progression");
  form.addEventListener("submit", (event) => {
    const files = form.querySelector("#pieces");
    if (event.submitter && event.submitter.hasAttribute("formaction")) {
      return; // "Enregistrer le brouillon": an ordinary form post
    }
    if (!files || files.files.length === 0) {
      return;
    }
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    progress.hidden = false;
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) {
        progress.value = Math.round((100 * e.loaded) / e.total);
      }
    });
    request.addEventListener("load", () => {
      // The redirect was followed: show the page it led to (with its notice) as it is.
      if (request.status < 400 && request.responseURL) {
        window.history.replaceState(null, "", request.responseURL);
      }
      document.open();
      document.write(request.responseText);
      document.close();
    });
    request.send(new FormData(form));
  });
});
