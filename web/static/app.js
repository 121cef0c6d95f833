// Small enhancements; every page works without them, and keeps its state in its URL.
"use strict";

// Filter table rows by the text typed in a search box (the run page's summary).
document.querySelectorAll("[data-filter-rows]").forEach((input) => {
  const table = document.querySelector(input.dataset.filterRows);
  const count = document.getElementById("summary-count");
  const rows = Array.from(table.rows);
  const apply = () => {
    const needle = input.value.trim().toLowerCase();
    let shown = 0;
    rows.forEach((row) => {
      const match = !needle || row.textContent.toLowerCase().includes(needle);
      row.hidden = !match;
      if (match) shown += 1;
    });
    if (count) count.textContent = needle ? `${shown} of ${rows.length} keys` : `${rows.length} keys`;
  };
  input.addEventListener("input", apply);
  apply();
});

// A switch that adds a class to a target and records itself in the URL (the "only differences" view).
document.querySelectorAll("[data-toggle-class]").forEach((box) => {
  const target = document.querySelector(box.dataset.target);
  box.addEventListener("change", () => {
    target.classList.toggle(box.dataset.toggleClass, box.checked);
    const url = new URL(window.location.href);
    if (box.checked) url.searchParams.set(box.dataset.urlParam, "1");
    else url.searchParams.delete(box.dataset.urlParam);
    window.history.replaceState(null, "", url);
  });
});

// Replay an event in place: POST with the CSRF token, then show what happened in its row.
document.querySelectorAll("form[data-replay]").forEach((form) => {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const row = form.closest("tr");
    const result = row.querySelector(".replay-result");
    const button = form.querySelector("button");
    button.disabled = true;
    result.textContent = "Replaying…";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "X-CSRF-Token": form.elements.csrf_token.value },
        credentials: "same-origin",
      });
      const body = await response.json();
      if (response.ok) {
        row.querySelector(".event-status").textContent = body.status;
        row.querySelector(".last-error").textContent = body.error || "";
        result.textContent = `Replayed: ${body.status}${body.outcome ? ` (${body.outcome})` : ""}`;
      } else {
        result.textContent = `Not replayed: ${body.message}`;
        button.disabled = false;
      }
    } catch (error) {
      result.textContent = `Not replayed: ${error.message}`;
      button.disabled = false;
    }
  });
});

// A log axis over these values, ticked at 1, 2 and 5 of each decade (more within one decade,
// fewer over many) and labelled with whole values: plotly labels a log axis's minor ticks with
// a bare digit, "2" for 0.02.
function logAxis(values) {
  let low = Infinity;
  let high = -Infinity;
  values.forEach((value) => {
    if (typeof value === "number" && Number.isFinite(value) && value > 0) {
      low = Math.min(low, value);
      high = Math.max(high, value);
    }
  });
  if (low === Infinity) return { type: "log" };
  const first = Math.floor(Math.log10(low));
  const last = Math.ceil(Math.log10(high));
  const decades = last - first;
  const mantissas = decades <= 1 ? [1, 1.5, 2, 3, 4, 5, 6, 8] : decades <= 3 ? [1, 2, 5] : [1];
  const every = Math.ceil(decades / 8) || 1;
  const ticks = [];
  for (let decade = first; decade <= last; decade += every) {
    mantissas.forEach((mantissa) => ticks.push(Number((mantissa * 10 ** decade).toPrecision(2))));
  }
  const text = (tick) => (tick < 1e-3 || tick >= 1e5 ? tick.toExponential().replace("e+", "e") : String(tick));
  return { type: "log", tickmode: "array", tickvals: ticks, ticktext: ticks.map(text) };
}
