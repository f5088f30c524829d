// daytwo dashboard: a small vanilla-JS layer (no CDN, no build step).
// - <form data-api-form data-method="POST" data-then="/runs/{id}">: send the fields as JSON
//   to the form's action; then go to the page named by data-then (fields of the answer
//   fill {placeholders}) or print the answer into the element named by data-result;
//   data-action="/api/v1/x/{field}" builds the URL from the form's own fields.
// - <button data-api-button="/api/v1/..." data-method="POST" data-result="#id">: call the API
//   and print a summary of the answer.
// - <div data-sse="/api/v1/runs/ID/events" data-reload-on="done">: stream server-sent
//   events into the element; reload the page when an event of that type arrives.
"use strict";

function fill(template, data) {
  return template.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(data[k] ?? ""));
}

async function callApi(method, url, body) {
  const init = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
  // The session's CSRF token: every state-changing request carries it (see websec.py).
  const csrf = document.querySelector('meta[name="csrf-token"]');
  if (csrf && csrf.content) init.headers["X-CSRF-Token"] = csrf.content;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const err = (data && data.error) || { message: resp.statusText };
    throw new Error(err.message + (err.hint ? " (" + err.hint + ")" : ""));
  }
  return data;
}

function show(target, text, cls) {
  const el = typeof target === "string" ? document.querySelector(target) : target;
  if (!el) return;
  el.textContent = text;
  el.className = "result " + (cls || "");
}

function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === "checkbox") { out[el.name] = el.checked; continue; }
    if (el.type === "radio") { if (el.checked) out[el.name] = el.value; continue; }
    if (el.value === "") continue;
    if (el.dataset.json !== undefined) {
      try { out[el.name] = JSON.parse(el.value); } catch (e) { throw new Error(el.name + " is not valid JSON"); }
    } else if (el.type === "number") {
      out[el.name] = Number(el.value);
    } else {
      out[el.name] = el.value;
    }
  }
  return out;
}

function bindForms() {
  for (const form of document.querySelectorAll("form[data-api-form]")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const target = form.dataset.result || null;
      try {
        const values = formValues(form);
        // data-action="/api/.../{field}": the URL takes fields of the form (a chosen set).
        // getAttribute: a field named "action" would shadow form.action.
        const url = form.dataset.action ? fill(form.dataset.action, values) : form.getAttribute("action");
        const data = await callApi(form.dataset.method || "POST", url, values);
        if (form.dataset.then) { window.location.href = fill(form.dataset.then, data); return; }
        if (target) show(target, JSON.stringify(data, null, 2), "ok");
      } catch (e) {
        if (target) show(target, e.message, "error"); else alert(e.message);
      }
    });
  }
}

function bindButtons() {
  for (const btn of document.querySelectorAll("button[data-api-button]")) {
    btn.addEventListener("click", async () => {
      const target = btn.dataset.result;
      btn.disabled = true;
      try {
        const data = await callApi(btn.dataset.method || "POST", btn.dataset.apiButton);
        const summary = data && data.summary ? data.summary : JSON.stringify(data, null, 2);
        show(target, summary, data && data.ok === false ? "bad" : "ok");
        if (btn.dataset.reload !== undefined) window.location.reload();
      } catch (e) {
        show(target, e.message, "error");
      } finally {
        btn.disabled = false;
      }
    });
  }
}

function bindStreams() {
  for (const el of document.querySelectorAll("[data-sse]")) {
    const source = new EventSource(el.dataset.sse, { withCredentials: true });
    const reloadOn = (el.dataset.reloadOn || "").split(",").filter(Boolean);
    const onEvent = (ev) => {
      const line = document.createElement("div");
      line.textContent = ev.type + " " + ev.data;
      el.appendChild(line);
      el.scrollTop = el.scrollHeight;
      if (reloadOn.includes(ev.type)) { source.close(); window.location.reload(); }
    };
    for (const type of ["message", "step", "status", "done", "error_event"]) {
      source.addEventListener(type, onEvent);
    }
    source.onerror = () => source.close();
  }
}

// Sizes computed on the server ride in data attributes (the CSP forbids inline styles;
// setting them through the CSSOM is allowed): data-left/data-width in %, data-indent in px.
function applySizes() {
  const num = (v) => { const n = Number(v); return Number.isFinite(n) ? n : 0; };
  for (const el of document.querySelectorAll("[data-left]")) el.style.left = num(el.dataset.left) + "%";
  for (const el of document.querySelectorAll("[data-width]")) el.style.width = num(el.dataset.width) + "%";
  for (const el of document.querySelectorAll("[data-indent]")) el.style.paddingLeft = num(el.dataset.indent) + "px";
}

document.addEventListener("DOMContentLoaded", () => {
  applySizes();
  bindForms();
  bindButtons();
  bindStreams();
});
