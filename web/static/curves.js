// The run page's curves: one line chart per chosen key, and, while the run trains, new points
// as the server sends them on one stream (server-sent events: README, Live runs).
"use strict";

(() => {
  const section = document.getElementById("curves");
  const data = document.getElementById("history-data");
  if (!section || !data || typeof Plotly === "undefined") return;

  const runId = section.dataset.runId;
  // After a stream is refused (a 503 while the database is down, say), a new one this much later.
  const REOPEN_MS = 5000;
  const keyList = document.getElementById("curve-key-list");
  const logBox = document.getElementById("curve-log");
  const smoothing = document.getElementById("curve-smoothing");
  const smoothingValue = document.getElementById("curve-smoothing-value");
  const charts = document.getElementById("curve-charts");
  const status = document.getElementById("curves-status");
  // Only a run that may still report is followed.
  const LIVE = new Set(["launched", "running"]);
  const PLOT_CONFIG = { responsive: true, displaylogo: false };
  const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

  const initial = JSON.parse(data.textContent);
  const history = { steps: [], series: {} };
  let runStatus = section.dataset.status;

  // A stored value as a number for the chart: NaN, infinities and non-numbers are gaps.
  function numeric(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  }

  function merge(answer) {
    const last = history.steps.length ? history.steps[history.steps.length - 1] : null;
    let added = 0;
    answer.steps.forEach((step, i) => {
      if (last !== null && step <= last) return;
      const known = history.steps.length;
      history.steps.push(step);
      Object.entries(answer.series).forEach(([key, values]) => {
        if (!history.series[key]) history.series[key] = new Array(known).fill(null);
        history.series[key].push(numeric(values[i]));
      });
      Object.values(history.series).forEach((values) => {
        if (values.length < history.steps.length) values.push(null);
      });
      added += 1;
    });
    return added;
  }

  function chosenKeys() {
    return Array.from(keyList.querySelectorAll("input[type=checkbox]:checked")).map((box) => box.value);
  }

  function addKeyBoxes() {
    const shown = new Set(Array.from(keyList.querySelectorAll("input")).map((box) => box.value));
    const anyChecked = chosenKeys().length > 0;
    Object.keys(history.series).forEach((key, i) => {
      if (shown.has(key)) return;
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "keys";
      box.value = key;
      // The first keys of a run that had none when the page opened are drawn at once.
      box.checked = !anyChecked && i < 4;
      box.addEventListener("change", changed);
      label.append(box, ` ${key}`);
      keyList.append(label);
    });
  }

  // Exponential moving average, debiased so that the first points are not pulled towards zero.
  function smoothed(values, weight) {
    let last = 0;
    let total = 0;
    return values.map((value) => {
      if (value === null) return null;
      last = last * weight + (1 - weight) * value;
      total = total * weight + (1 - weight);
      return last / total;
    });
  }

  function chartFor(key) {
    const id = `curve-${encodeURIComponent(key).replace(/%/g, "_")}`;
    let element = document.getElementById(id);
    if (!element) {
      element = document.createElement("div");
      element.id = id;
      element.className = "chart short curve";
      element.dataset.key = key;
      element.setAttribute("role", "img");
      element.setAttribute("aria-label", `${key} by step`);
      charts.append(element);
    }
    return element;
  }

  function draw() {
    const keys = chosenKeys();
    const weight = Number(smoothing.value);
    const log = logBox.checked;
    Array.from(charts.children).forEach((element) => {
      if (!keys.includes(element.dataset.key)) {
        Plotly.purge(element);
        element.remove();
      }
    });
    keys.forEach((key, i) => {
      const values = history.series[key] || [];
      const colour = COLOURS[i % COLOURS.length];
      const traces = [{
        type: "scatter",
        mode: history.steps.length > 1 ? "lines" : "markers",
        name: key,
        x: history.steps,
        y: values,
        connectgaps: true,
        line: { color: colour, width: weight > 0 ? 1 : 2 },
        opacity: weight > 0 ? 0.3 : 1,
        showlegend: false,
      }];
      if (weight > 0) {
        traces.push({
          type: "scatter", mode: "lines", name: `${key} (smoothed)`, x: history.steps,
          y: smoothed(values, weight), connectgaps: true, line: { color: colour, width: 2 }, showlegend: false,
        });
      }
      const layout = {
        margin: { l: 60, r: 20, t: 30, b: 40 },
        font: { family: "system-ui, sans-serif", size: 13 },
        title: { text: key, font: { size: 14 }, x: 0, xanchor: "left" },
        xaxis: { title: { text: "step" } },
        yaxis: log ? logAxis(values) : { type: "linear" },
        uirevision: key,
      };
      const element = chartFor(key);
      Plotly.react(element, traces, layout, PLOT_CONFIG).then(() => {
        element.dataset.drawn = "true";
        element.dataset.points = String(values.filter((v) => v !== null).length);
      });
    });
    const last = history.steps.length ? history.steps[history.steps.length - 1] : null;
    charts.dataset.lastStep = last === null ? "" : String(last);
    charts.dataset.points = String(history.steps.length);
    if (history.steps.length) {
      status.textContent = `${history.steps.length.toLocaleString()} points, steps ${history.steps[0].toLocaleString()} to ${last.toLocaleString()}`
        + (LIVE.has(runStatus) ? `; following the run (${runStatus}).` : ".");
    }
    const step = document.getElementById("live-step");
    if (step && last !== null) step.textContent = last.toLocaleString();
  }

  function remember() {
    const url = new URL(window.location.href);
    url.searchParams.set("keys", chosenKeys().join(","));
    if (logBox.checked) url.searchParams.set("log", "1");
    else url.searchParams.delete("log");
    if (Number(smoothing.value) > 0) url.searchParams.set("smoothing", smoothing.value);
    else url.searchParams.delete("smoothing");
    window.history.replaceState(null, "", url);
  }

  function changed() {
    smoothingValue.textContent = smoothing.value;
    remember();
    draw();
  }

  // Each answer carries the run's status and whether it is stalled: the page follows both
  // without reading the whole run.
  function showStatus(answer) {
    runStatus = answer.status;
    const badge = document.getElementById("run-status");
    if (badge) {
      badge.textContent = answer.status;
      badge.className = `status status-${answer.status}`;
    }
    const stalled = document.getElementById("run-stalled");
    if (stalled) stalled.hidden = !answer.stalled;
  }

  // One stream while the run may still report. The browser reconnects by itself when the stream
  // ends or breaks, resuming after the last step it was sent (Last-Event-ID); a stream the
  // server refused is opened again later.
  function follow() {
    const last = history.steps.length ? history.steps[history.steps.length - 1] : null;
    const query = last === null ? "" : `?since_step=${last}`;
    const source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/history/stream${query}`);
    source.onmessage = (message) => {
      const answer = JSON.parse(message.data);
      if (merge(answer) > 0) {
        addKeyBoxes();
        draw();
      }
      showStatus(answer);
      if (!LIVE.has(runStatus)) {
        source.close();
        draw();
      }
    };
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) return;
      status.textContent = "Could not follow the run's new points; trying again.";
      window.setTimeout(follow, REOPEN_MS);
    };
  }

  keyList.querySelectorAll("input").forEach((box) => box.addEventListener("change", changed));
  logBox.addEventListener("change", changed);
  smoothing.addEventListener("input", changed);
  merge(initial);
  addKeyBoxes();
  draw();
  if (LIVE.has(runStatus)) follow();
})();
