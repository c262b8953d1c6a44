// jobsite dashboard: live updates from the event streams (or by polling small JSON endpoints),
// confirmations, uploads with progress. Everything here is an improvement on plain forms and links that work without it.
"use strict";

const POLL_MS = 2000;
const SETTLE_POLLS = 10;  // after a job has finished, polls for its last tiles to stop moving

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function setProgress(container, percent) {
  const bar = container.querySelector("[data-field=progress]");
  if (!bar) return;
  bar.setAttribute("aria-valuenow", percent);
  bar.querySelector("rect").setAttribute("width", percent);
  bar.querySelector("em").textContent = `${percent}%`;
}

function setStatus(container, status) {
  const badge = container.querySelector("[data-field=status]");
  if (!badge) return;
  badge.className = `badge status-${status}`;
  badge.textContent = status;
}

function setText(container, field, value) {
  const element = container.querySelector(`[data-field=${field}]`);
  if (element) element.textContent = value;
}

// The events of the stream of `element` (its data-events URL: Server-Sent Events) call
// `changed(jobId)` for each event about a job; `unavailable()` when the stream cannot be had (an
// error answer, no EventSource). A server that answers and closes (WSGI) is asked again by the
// browser every 2 s. The element's data-stream says "open" or "closed".
const JOB_EVENTS = ["job.created", "job.waiting", "job.started", "job.progress", "job.succeeded", "job.failed",
  "job.canceled", "tile.failed"];

function listen(element, changed, unavailable) {
  const url = element.dataset.events;
  if (!url || !window.EventSource) return null;
  const source = new EventSource(url);
  source.addEventListener("open", () => { element.dataset.stream = "open"; });
  const onEvent = (event) => {
    let job;
    try { job = JSON.parse(event.data).data.id; } catch (error) { return; }
    changed(String(job));
  };
  for (const type of JOB_EVENTS) source.addEventListener(type, onEvent);
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) return;
    element.dataset.stream = "closed";
    unavailable();
  });
  return source;
}

// `work` run again as soon as it is done when asked for while it runs, never twice at once.
function coalesced(work) {
  let running = false;
  let again = false;
  return async function run() {
    if (running) { again = true; return; }
    running = true;
    try { await work(); } catch (error) { console.warn(error); }
    running = false;
    if (again) { again = false; run(); }
  };
}

// The jobs list: a row updates when an event about its job arrives (without a stream, the
// unfinished ones every 2 s), until no row is unfinished.
function liveJobList(table) {
  const wanted = new Set();
  const unfinished = () => [...table.querySelectorAll("tr[data-job][data-final='0']")].map((row) => row.dataset.job);
  let source = null;
  const refresh = coalesced(async () => {
    const ids = [...wanted];
    wanted.clear();
    if (ids.length === 0) return;
    const data = await getJSON(`${table.dataset.live}?ids=${ids.join(",")}`);
    for (const job of data.jobs) {
      const row = table.querySelector(`tr[data-job='${job.id}']`);
      setStatus(row, job.status);
      setProgress(row, job.progress);
      setText(row, "duration", job.duration);
      row.dataset.final = job.final ? "1" : "0";
    }
    if (source && unfinished().length === 0) { source.close(); source = null; }
  });
  const refreshAll = () => { for (const id of unfinished()) wanted.add(id); refresh(); };
  function poll() {
    if (unfinished().length === 0) return;
    refreshAll();
    setTimeout(poll, POLL_MS);
  }
  if (unfinished().length === 0) return;
  source = listen(table, (id) => {
    if (table.querySelector(`tr[data-job='${id}']`)) { wanted.add(id); refresh(); }
  }, () => { source = null; setTimeout(poll, POLL_MS); });
  if (source) source.addEventListener("open", refreshAll, { once: true });  // what changed before it opened
  else setTimeout(poll, POLL_MS);
}

// A job page: status, progress, tile map and log update, and the parts the server renders for it
// (counts, result, details) are replaced as they change: at once on each event about the job, and
// every 10 s besides (tiles that start and log lines have no events), or every 2 s without a
// stream; once the job has finished, every 2 s until no tile is still moving.
const SLOW_MS = 10000;

function liveJobPage(page) {
  if (page.dataset.final) return;
  let after = Number(page.dataset.after || 0);
  const log = page.querySelector(".log");
  const shown = {};
  let source = null;
  let final = false;
  let finalSeen = 0;
  let settled = false;
  function show(data) {
    page.dispatchEvent(new CustomEvent("jobsite:live", {detail: data}));  // for the map (maps.js)
    setStatus(page, data.status);
    setProgress(page, data.progress);
    for (const [name, html] of Object.entries(data.parts)) {
      const part = page.querySelector(`[data-part=${name}]`);
      if (part && shown[name] !== html) {
        part.innerHTML = html;
        shown[name] = html;
      }
    }
    for (const [tile, status] of Object.entries(data.tiles)) {
      const rect = page.querySelector(`rect[data-tile='${tile}']`);
      if (rect && !rect.classList.contains(`status-${status}`)) {
        rect.setAttribute("class", `tile status-${status}`);
        rect.querySelector("title").textContent = `tile ${tile}: ${status}`;
      }
    }
    const lines = data.logs.filter((line) => line.id > after);
    for (const line of lines) {
      log.insertAdjacentHTML("beforeend", line.html);
      after = line.id;
    }
    if (lines.length) log.scrollTop = log.scrollHeight;
    for (const [action, allowed] of Object.entries(data.allowed)) {
      const form = page.querySelector(`[data-action=${action}]`);
      if (form) form.hidden = !allowed;
    }
  }
  let timer = null;
  const refresh = coalesced(async () => {
    if (settled) return;
    try {
      const data = await getJSON(`${page.dataset.live}?after=${after}`);
      show(data);
      final = data.final;
      if (final) finalSeen += 1;
      settled = data.settled || finalSeen > SETTLE_POLLS;
      // Nothing on it changes any more: as the server says, or it stopped asking after SETTLE_POLLS.
      if (settled) page.dataset.settled = data.settled ? "true" : "gave-up";
      if (settled && source) { source.close(); source = null; }
    } finally {
      clearTimeout(timer);  // the next look, counted from this one
      if (!settled) timer = setTimeout(refresh, source && !final ? SLOW_MS : POLL_MS);
    }
  });
  source = listen(page, refresh, () => { source = null; refresh(); });
  if (source) source.addEventListener("open", refresh, { once: true });  // what changed before it opened
  timer = setTimeout(refresh, source ? SLOW_MS : POLL_MS);
}

// Forms that change things ask first, in the page's dialog; without JavaScript the server asks on
// a page instead.
function confirmations(dialog) {
  let asking = null;
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("form[data-confirm]") || form.dataset.confirmed) return;
    event.preventDefault();
    asking = form;
    dialog.querySelector(".question").textContent = form.dataset.confirm;
    dialog.querySelector("button[value=yes]").textContent = form.dataset.confirmYes || "Yes";
    dialog.querySelector("button[value=no]").textContent = form.dataset.confirmNo || "No";
    dialog.returnValue = "";
    dialog.showModal();
    dialog.querySelector("button[value=no]").focus();
  });
  dialog.addEventListener("close", () => {
    const form = asking;
    asking = null;
    if (!form || dialog.returnValue !== "yes") return;
    if (!form.querySelector("input[name=confirm]")) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = "confirm"; input.value = "yes";
      form.appendChild(input);
    }
    form.dataset.confirmed = "1";
    form.submit();
  });
}

// Uploads: drag and drop onto the form, and a progress bar for large files (XHR to the API).
function uploads(form) {
  const drop = form.querySelector(".drop");
  const fileInput = form.querySelector("input[type=file]");
  const bar = form.querySelector(".upload-progress");
  form.querySelector(".drop-hint").hidden = false;
  for (const name of ["dragenter", "dragover"]) drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) fileInput.files = event.dataTransfer.files;
  });
  form.addEventListener("submit", (event) => {
    if (!fileInput.files.length) return;  // let the server say what is missing
    event.preventDefault();
    const data = new FormData();
    data.append("file", fileInput.files[0]);
    const name = form.querySelector("input[name=name]").value.trim();
    if (name) data.append("name", name);
    const replace = form.querySelector("input[name=replace]").checked;
    const target = name || fileInput.files[0].name;
    const request = new XMLHttpRequest();
    request.open(replace ? "PUT" : "POST", replace ? `${form.dataset.api}${encodeURIComponent(target)}/` : form.dataset.api);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    bar.hidden = false;
    request.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; });
    request.addEventListener("load", () => {
      bar.hidden = true;
      if (request.status === 200 || request.status === 201) {
        const body = JSON.parse(request.responseText);
        window.location.href = `${window.location.pathname}${encodeURIComponent(body.name)}/`;
        return;
      }
      let message = `upload failed (${request.status})`;
      try { message = JSON.parse(request.responseText).detail || message; } catch (error) { /* not JSON */ }
      showUploadError(form, message);
    });
    request.addEventListener("error", () => { bar.hidden = true; showUploadError(form, "the upload was interrupted"); });
    request.send(data);
  });
}

function showUploadError(form, message) {
  let element = form.querySelector(".upload-error");
  if (!element) {
    element = document.createElement("p");
    element.className = "error upload-error";
    element.setAttribute("role", "alert");
    form.prepend(element);
  }
  element.textContent = message;
}

// The new-job form: choosing another type shows its parameters at once; so does choosing another
// type for a step of a chain, which posts the form back with what was entered (jobs/chainform.py).
function jobForm(form) {
  const select = form.querySelector("select[name=type]");
  const button = form.querySelector(".switch-type");
  if (!select || !button) return;
  button.hidden = true;
  select.addEventListener("change", () => { window.location.search = `?type=${encodeURIComponent(select.value)}`; });
  form.querySelectorAll("fieldset.step").forEach((step) => {
    const show = step.querySelector(".switch-step");
    const type = step.querySelector("select[name$=_type]");
    if (!show || !type) return;
    show.hidden = true;
    type.addEventListener("change", () => form.requestSubmit(show));
  });
}

// "Copy link for QGIS": the link made in place, through the API, and put on the clipboard; without
// this script the link leads to a page that makes it.
function outputLinks() {
  document.addEventListener("click", async (event) => {
    const anchor = event.target.closest(".output-link a[data-api]");
    if (!anchor) return;
    event.preventDefault();
    const field = anchor.parentElement.querySelector("input.link");
    try {
      const response = await fetch(anchor.dataset.api, {
        method: "POST", credentials: "same-origin", body: "{}",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.detail || `${response.status}`);
      field.value = answer.url;
      field.hidden = false;
      field.select();
      try {
        await navigator.clipboard.writeText(answer.url);
        anchor.textContent = "Copied";
      } catch (error) {
        anchor.textContent = "Copy the link below";  // no clipboard here (a plain http site): it is selected
      }
    } catch (error) {
      anchor.textContent = `No link: ${error.message}`;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  outputLinks();
  const table = document.querySelector("table.jobs[data-live]");
  if (table) liveJobList(table);
  const page = document.querySelector(".job-page[data-live]");
  if (page) liveJobPage(page);
  const upload = document.querySelector("form.upload[data-api]");
  if (upload) uploads(upload);
  const form = document.querySelector("form.job-form");
  if (form) jobForm(form);
  const dialog = document.querySelector("dialog.confirm");
  if (dialog) confirmations(dialog);
});
