// Caducée — small progressive enhancements (no inline script anywhere: CSP script-src 'self').
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Forms that ask for a confirmation first: <form data-confirm="Question ?">
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
  // Copy buttons: <button data-copy="element-id">
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source || !navigator.clipboard) {
        return;
      }
      await navigator.clipboard.writeText(source.innerText.trim());
      const label = button.textContent;
      button.textContent = "✓";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  }
  for (const button of document.querySelectorAll("button[data-print]")) {
    button.addEventListener("click", () => window.print());
  }
});
