// jobsite dashboard: live updates by polling small JSON endpoints, confirmations, uploads with
// progress. Everything here is an improvement on plain forms and links that work without it.
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

// The jobs list: rows of unfinished jobs update until they finish.
function liveJobList(table) {
  async function poll() {
    const rows = [...table.querySelectorAll("tr[data-job][data-final='0']")];
    if (rows.length === 0) return;
    try {
      const data = await getJSON(`${table.dataset.live}?ids=${rows.map((r) => r.dataset.job).join(",")}`);
      for (const job of data.jobs) {
        const row = table.querySelector(`tr[data-job='${job.id}']`);
        setStatus(row, job.status);
        setProgress(row, job.progress);
        setText(row, "duration", job.duration);
        row.dataset.final = job.final ? "1" : "0";
      }
    } catch (error) { console.warn(error); }
    setTimeout(poll, POLL_MS);
  }
  setTimeout(poll, POLL_MS);
}

// A job page: status, progress, tile map and log update, and the parts the server renders for it
// (counts, result, details) are replaced as they change, until the job has finished and no tile
// is still moving.
function liveJobPage(page) {
  let after = Number(page.dataset.after || 0);
  const log = page.querySelector(".log");
  const shown = {};
  let finalPolls = 0;
  async function poll() {
    let data;
    try {
      data = await getJSON(`${page.dataset.live}?after=${after}`);
    } catch (error) { console.warn(error); setTimeout(poll, POLL_MS); return; }
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
    for (const line of data.logs) {
      log.insertAdjacentHTML("beforeend", line.html);
      after = line.id;
    }
    if (data.logs.length) log.scrollTop = log.scrollHeight;
    for (const [action, allowed] of Object.entries(data.allowed)) {
      const form = page.querySelector(`[data-action=${action}]`);
      if (form) form.hidden = !allowed;
    }
    if (data.final) finalPolls += 1;
    if (!data.settled && finalPolls <= SETTLE_POLLS) setTimeout(poll, POLL_MS);
  }
  if (!page.dataset.final) setTimeout(poll, POLL_MS);
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

// The new-job form: choosing another type shows its parameters at once.
function jobForm(form) {
  const select = form.querySelector("select[name=type]");
  const button = form.querySelector(".switch-type");
  if (!select || !button) return;
  button.hidden = true;
  select.addEventListener("change", () => { window.location.search = `?type=${encodeURIComponent(select.value)}`; });
}

document.addEventListener("DOMContentLoaded", () => {
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
