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
