// Caducée — compose page: the two address books (Professionnels, Patients) with suggestions,
// and the channel of every recipient shown at a glance. No inline script (CSP).
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
          option.label = entry.nom ? `${entry.nom} <${entry.adresse}>` : entry.adresse;
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
