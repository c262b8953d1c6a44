// The new-job form: a parameter that the chosen values of the others leave unused (hillshade's
// altitude with mode igor) is hidden and disabled, so that the browser does not send it. Its
// field says when in data-unused-with: {"param_mode": ["igor"]}. Without this script the server
// ignores such a value.
"use strict";

document.querySelectorAll("form.job-form [data-unused-with]").forEach((input) => {
  const conditions = Object.entries(JSON.parse(input.dataset.unusedWith));
  const row = input.closest(".field");
  const update = () => {
    const unused = conditions.some(([name, values]) => {
      const other = input.form.elements[name];
      return Boolean(other) && values.includes(other.value);
    });
    input.disabled = unused;
    if (row) row.hidden = unused;
  };
  conditions.forEach(([name]) => {
    const other = input.form.elements[name];
    if (other) other.addEventListener("change", update);
  });
  update();
});

// The estimate: what the job would cost, asked of the server (the form's own view, as JSON) a
// moment after the last change. Without this script the Estimate button shows it.
(() => {
  const form = document.querySelector("form.job-form");
  const output = form && form.querySelector("output.estimate-text");
  if (!output) return;
  let timer = null;
  let asked = 0;
  const ask = async () => {
    const body = new FormData(form);
    body.set("estimate", "1");
    const mine = ++asked;
    try {
      const answer = await fetch(form.action || window.location.href, {
        method: "POST", body, headers: {Accept: "application/json"}, credentials: "same-origin"});
      const found = await answer.json();
      if (mine !== asked) return;  // a later change asked again
      output.textContent = answer.ok ? found.text.trim()
        : "No estimate: " + Object.entries(found.errors).map(([name, problems]) => `${name}: ${problems.join(" ")}`).join("; ");
    } catch (error) {
      if (mine === asked) output.textContent = "No estimate: the server did not answer.";
    }
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(ask, 300); };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  ask();
})();
