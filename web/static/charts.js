// Charts over every matching run, drawn with plotly.js (served by the app, from the plotly package).
"use strict";

const METHOD_COLOURS = [
  "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
];
const CONFIG = { responsive: true, displaylogo: false };
const LAYOUT = {
  margin: { l: 60, r: 20, t: 20, b: 60 },
  font: { family: "system-ui, sans-serif", size: 13 },
  legend: { orientation: "h", y: -0.2 },
};

function readData(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : null;
}

function label(key) {
  return key === null || key === undefined ? "(none)" : String(key);
}

function markDrawn(element, points) {
  element.dataset.drawn = "true";
  element.dataset.points = String(points);
}

// Compare: one box per group from the quartiles the database computed over every matching run.
function drawCompare() {
  const data = readData("compare-data");
  const element = document.getElementById("box-chart");
  if (!data || !element) return;
  const groups = data.groups;
  const trace = {
    type: "box",
    name: data.objective,
    x: groups.map((g) => label(g.key)),
    q1: groups.map((g) => g.q1),
    median: groups.map((g) => g.median),
    q3: groups.map((g) => g.q3),
    lowerfence: groups.map((g) => g.min),
    upperfence: groups.map((g) => g.max),
    mean: groups.map((g) => g.mean),
    boxmean: true,
    marker: { color: METHOD_COLOURS[0] },
    text: groups.map((g) => `${g.n} runs`),
    hoverinfo: "x+y+text",
  };
  const layout = {
    ...LAYOUT,
    showlegend: false,
    xaxis: { title: { text: data.by }, type: "category" },
    yaxis: { title: { text: `${data.objective} ${data.metric}` } },
  };
  Plotly.newPlot(element, [trace], layout, CONFIG).then(() =>
    markDrawn(element, groups.reduce((sum, g) => sum + g.n, 0)));
}

// Pareto: every considered run (in the page, column by column), coloured by method, the front on top.
async function drawPareto() {
  const data = readData("pareto-data");
  const element = document.getElementById("pareto-chart");
  const status = document.getElementById("pareto-status");
  if (!data || !element) return;
  const names = data.objectives.map((o) => o.name);
  const points = data.points;
  const byMethod = new Map();
  const count = points.run_id.length;
  const columns = names.map((name) => points.values[name]);
  for (let i = 0; i < count; i += 1) {
    const method = label(points.gradient_method[i]);
    if (!byMethod.has(method)) byMethod.set(method, { ids: [], values: names.map(() => []) });
    const series = byMethod.get(method);
    series.ids.push(points.run_id[i]);
    columns.forEach((column, j) => series.values[j].push(column[i]));
  }
  const methods = Array.from(byMethod.keys()).sort();
  const front = data.front.slice();
  let traces;
  let layout;
  if (names.length === 2) {
    front.sort((a, b) => a.values[names[0]] - b.values[names[0]]);
    traces = methods.map((method, i) => ({
      type: "scattergl",
      mode: "markers",
      name: method,
      x: byMethod.get(method).values[0],
      y: byMethod.get(method).values[1],
      text: byMethod.get(method).ids,
      marker: { size: 5, opacity: 0.55, color: METHOD_COLOURS[i % METHOD_COLOURS.length] },
    }));
    traces.push({
      type: "scatter",
      mode: "lines+markers",
      name: "Pareto front",
      x: front.map((r) => r.values[names[0]]),
      y: front.map((r) => r.values[names[1]]),
      text: front.map((r) => r.run_id),
      line: { color: "#000", width: 2, shape: "linear" },
      marker: { size: 9, color: "#ffd400", line: { color: "#000", width: 1.5 } },
    });
    layout = {
      ...LAYOUT,
      xaxis: { title: { text: `${names[0]} (${data.objectives[0].direction})` } },
      yaxis: { title: { text: `${names[1]} (${data.objectives[1].direction})` } },
    };
  } else {
    const dimensions = (values) => names.map((name, i) => ({ label: name, values: values[i] }));
    traces = methods.map((method, i) => ({
      type: "splom",
      name: method,
      dimensions: dimensions(byMethod.get(method).values),
      text: byMethod.get(method).ids,
      showupperhalf: false,
      diagonal: { visible: false },
      marker: { size: 4, opacity: 0.5, color: METHOD_COLOURS[i % METHOD_COLOURS.length] },
    }));
    traces.push({
      type: "splom",
      name: "Pareto front",
      dimensions: dimensions(names.map((name) => front.map((r) => r.values[name]))),
      text: front.map((r) => r.run_id),
      showupperhalf: false,
      diagonal: { visible: false },
      marker: { size: 7, color: "#ffd400", line: { color: "#000", width: 1 } },
    });
    layout = { ...LAYOUT, dragmode: "select", hovermode: "closest" };
  }
  await Plotly.newPlot(element, traces, layout, CONFIG);
  status.textContent = `${count.toLocaleString()} runs drawn, ${front.length} on the front.`;
  markDrawn(element, count);
}

// Stats: runs per day stacked by status, and the crash rate of each group.
function drawStats() {
  const data = readData("stats-data");
  if (!data) return;
  const crash = document.getElementById("crash-chart");
  if (crash) {
    Plotly.newPlot(crash, [{
      type: "bar",
      x: data.groups.map((g) => label(g.key)),
      y: data.groups.map((g) => 100 * (g.crash_rate || 0)),
      marker: { color: "#d62728" },
      hovertemplate: "%{x}: %{y:.1f}%<extra></extra>",
    }], { ...LAYOUT, showlegend: false, xaxis: { type: "category" }, yaxis: { title: { text: "crashed (%)" } } }, CONFIG)
      .then(() => markDrawn(crash, data.groups.length));
  }
  const days = document.getElementById("day-chart");
  if (days) {
    const statuses = new Set();
    data.per_day.forEach((day) => Object.keys(day).forEach((key) => { if (!["day", "runs"].includes(key)) statuses.add(key); }));
    const other = data.per_day.map((day) => day.runs - Array.from(statuses).reduce((sum, s) => sum + (day[s] || 0), 0));
    const traces = Array.from(statuses).sort().map((status, i) => ({
      type: "bar",
      name: status,
      x: data.per_day.map((day) => day.day),
      y: data.per_day.map((day) => day[status] || 0),
      marker: { color: METHOD_COLOURS[i % METHOD_COLOURS.length] },
    }));
    if (other.some((n) => n > 0)) {
      traces.push({ type: "bar", name: "other (killed, launched)", x: data.per_day.map((day) => day.day), y: other, marker: { color: "#bbb" } });
    }
    Plotly.newPlot(days, traces, { ...LAYOUT, barmode: "stack", yaxis: { title: { text: "runs" } } }, CONFIG)
      .then(() => markDrawn(days, data.per_day.length));
  }
}

// Scaffolds: distinct scaffolds per 1,000 valid molecules, one bar per gradient method.
function drawDiversity() {
  const data = readData("diversity-data");
  const element = document.getElementById("diversity-chart");
  if (!data || !element) return;
  Plotly.newPlot(element, [{
    type: "bar",
    x: data.groups.map((g) => label(g.key)),
    y: data.groups.map((g) => g.scaffolds_per_1000_valid),
    marker: { color: data.groups.map((g, i) => METHOD_COLOURS[i % METHOD_COLOURS.length]) },
    hovertemplate: "%{x}: %{y:.1f} per 1,000<extra></extra>",
  }], { ...LAYOUT, showlegend: false, xaxis: { type: "category" }, yaxis: { title: { text: "scaffolds per 1,000 valid" } } }, CONFIG)
    .then(() => markDrawn(element, data.groups.length));
}

// Compare: one key's curve per run, a colour per gradient method (one legend entry each).
function drawOverlay() {
  const data = readData("overlay-data");
  const element = document.getElementById("overlay-chart");
  if (!data || !element) return;
  const methods = Array.from(new Set(data.runs.map((run) => label(run.gradient_method)))).sort();
  const shown = new Set();
  const traces = data.runs.map((run) => {
    const method = label(run.gradient_method);
    const first = !shown.has(method);
    shown.add(method);
    return {
      type: "scatter",
      mode: run.steps.length > 1 ? "lines" : "markers",
      name: method,
      legendgroup: method,
      showlegend: first,
      x: run.steps,
      y: run.values.map((v) => (typeof v === "number" && Number.isFinite(v) ? v : null)),
      text: run.run_id,
      hovertemplate: `${run.run_id} (${method})<br>step %{x}: %{y}<extra></extra>`,
      line: { color: METHOD_COLOURS[methods.indexOf(method) % METHOD_COLOURS.length], width: 1.5 },
    };
  });
  const layout = {
    ...LAYOUT,
    xaxis: { title: { text: "step" } },
    yaxis: {
      title: { text: data.key },
      ...(data.log ? logAxis(traces.flatMap((trace) => trace.y)) : { type: "linear" }),
    },
  };
  Plotly.newPlot(element, traces, layout, CONFIG).then(() => markDrawn(element, data.runs.length));
}

drawCompare();
drawOverlay();
drawPareto();
drawStats();
drawDiversity();
