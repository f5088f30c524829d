// daytwo dashboard: dates in the reader's time zone and an export link under every table.
// - <time datetime="2026-01-02T03:04:05Z">…UTC</time> (rendered by the server in UTC):
//   shown in the browser's time zone, the UTC time kept in the title.
// - <table id="X">: "Export X: CSV · JSON" links to the same page with the same query and
//   ?export=X&format=csv|json (server/exports.py answers with that table).
"use strict";

function localTimes() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short",
  });
  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    el.title = el.getAttribute("datetime") + " (UTC)";
    el.textContent = fmt.format(at);
    el.dataset.zone = zone;
  }
  const note = document.getElementById("time-zone");
  if (note) note.textContent = "times in " + zone;
}

function exportLinks() {
  for (const table of document.querySelectorAll("table[id]")) {
    const links = document.createElement("p");
    links.className = "export";
    links.append("Export " + table.id + ": ");
    for (const fmt of ["csv", "json"]) {
      const url = new URL(window.location.href);
      url.hash = "";
      url.searchParams.set("export", table.id);
      url.searchParams.set("format", fmt);
      const a = document.createElement("a");
      a.href = url.pathname + url.search;
      a.textContent = fmt.toUpperCase();
      a.className = "export-" + fmt;
      a.setAttribute("download", "");
      links.append(a);
      if (fmt === "csv") links.append(" · ");
    }
    table.after(links);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  exportLinks();
});
