// Keyboard navigation of the trace explorer and the session timeline (no CDN, no build).
// [data-keynav] holds rows with data-href: j / ArrowDown and k / ArrowUp move the current
// row, Enter opens it, x marks it for comparing, c compares the two marked runs, / focuses
// the text search, Escape leaves a field.
"use strict";

(function () {
  function rows() {
    const box = document.querySelector("[data-keynav]");
    return box ? Array.from(box.querySelectorAll("[data-href]")) : [];
  }
  let current = -1;

  function select(i) {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((row, n) => {
      row.classList.toggle("current", n === current);
      row.setAttribute("aria-selected", n === current ? "true" : "false");
    });
    all[current].scrollIntoView({ block: "nearest" });
  }

  function typing(el) {
    return el && (el.tagName === "INPUT" && el.type !== "checkbox" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (typing(document.activeElement)) {
      if (ev.key === "Escape") document.activeElement.blur();
      return;
    }
    const all = rows();
    switch (ev.key) {
      case "/": {
        const q = document.getElementById("q");
        if (q) { ev.preventDefault(); q.focus(); q.select(); }
        return;
      }
      case "j": case "ArrowDown":
        ev.preventDefault(); select(current + 1); return;
      case "k": case "ArrowUp":
        ev.preventDefault(); select(current < 0 ? 0 : current - 1); return;
      case "Enter":
        if (current >= 0 && all[current]) { ev.preventDefault(); window.location.href = all[current].dataset.href; }
        return;
      case "x": {
        const box = current >= 0 && all[current] ? all[current].querySelector("input[type=checkbox]") : null;
        if (box) { ev.preventDefault(); box.checked = !box.checked; }
        return;
      }
      case "c": {
        const form = document.getElementById("compare-form");
        if (form) { ev.preventDefault(); form.requestSubmit(); }
        return;
      }
      default:
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    // A click on a row (not on a link or the checkbox) opens it, as Enter does.
    for (const row of rows()) {
      row.addEventListener("click", (ev) => {
        if (ev.target.closest("a, input, button, label")) return;
        window.location.href = row.dataset.href;
      });
    }
  });
})();
