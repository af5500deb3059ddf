// The live dashboard at / (http_server.cc): one page, served from the
// binary, no internet needed. It polls /api/broker, /api/topics,
// /api/subscriptions and /api/connections every two seconds (the broker
// works out the rates); with users configured it asks for a monitor token
// once and keeps it for the browser tab (sessionStorage).
#pragma once

namespace tern {

inline constexpr char kDashboardPage[] = R"PAGE(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Tern</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
 h1 { font-size: 1.3em; margin: 0 0 .3em; } h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
 #overview span { margin-right: 1.6em; } #error { color: #b00; }
 table { border-collapse: collapse; min-width: 40em; }
 th, td { padding: .25em .7em; text-align: right; border-bottom: 1px solid #ddd; }
 th:first-child, td:first-child, .name { text-align: left; }
 canvas { vertical-align: middle; }
</style></head>
<body>
<h1>Tern</h1>
<div id="overview">loading…</div><div id="error"></div>
<h2>Topics</h2>
<table id="topics"><thead><tr><th>topic</th><th>in/s</th><th>last minutes</th>
<th>stored</th><th>bytes</th><th>in memory</th></tr></thead><tbody></tbody></table>
<h2>Subscriptions (largest lag first)</h2>
<table id="subscriptions"><thead><tr><th>topic</th><th class="name">subscription</th>
<th>lag</th><th>lag trend</th><th>pending</th><th>waiting</th><th>consumers</th>
<th>acked/s</th><th>dead-lettered</th></tr></thead><tbody></tbody></table>
<h2>Connections</h2>
<table id="connections"><thead><tr><th>peer</th><th class="name">client</th>
<th class="name">user</th><th>TLS</th><th>in B/s</th><th>out B/s</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const POLL_MS = 2000, HISTORY = 90;     // three minutes of points
const history = new Map();              // series name -> recent values

async function get(path) {
  const headers = {};
  const token = sessionStorage.getItem("tern-token");
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, {headers});
  if (response.status === 401) {
    const entered = prompt("Monitor token (a user with monitor = true):");
    if (entered) sessionStorage.setItem("tern-token", entered);
    throw new Error("this broker needs a monitor token");
  }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function remember(name, value) {
  const points = history.get(name) || [];
  points.push(value);
  if (points.length > HISTORY) points.shift();
  history.set(name, points);
  return points;
}

function sparkline(points) {
  const canvas = document.createElement("canvas");
  canvas.width = 120; canvas.height = 22;
  const g = canvas.getContext("2d"), top = Math.max(1, ...points);
  g.strokeStyle = "#36c"; g.beginPath();
  points.forEach((v, i) => {
    const x = i * (canvas.width - 1) / Math.max(1, HISTORY - 1);
    const y = canvas.height - 1 - v / top * (canvas.height - 2);
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
  return canvas;
}

function cell(row, content, className) {
  const td = row.insertCell();
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  if (className) td.className = className;
}

const number = n => Math.round(n).toLocaleString("en");

function render(broker, topics, subscriptions, connections) {
  let inRate = 0, ackRate = 0;
  const topicBody = document.querySelector("#topics tbody");
  topicBody.replaceChildren();
  for (const t of topics) {
    inRate += t.appended_per_s;
    const row = topicBody.insertRow();
    cell(row, t.name);
    cell(row, number(t.appended_per_s));
    cell(row, sparkline(remember("topic:" + t.name, t.appended_per_s)));
    cell(row, number(t.stored_messages));
    cell(row, number(t.stored_bytes));
    cell(row, number(t.memory_bytes));
  }
  const subBody = document.querySelector("#subscriptions tbody");
  subBody.replaceChildren();
  for (const s of subscriptions) {
    const key = s.topic + "/" + s.name;
    ackRate += s.acked_per_s;
    const row = subBody.insertRow();
    cell(row, s.topic);
    cell(row, s.name || "(ephemeral)", "name");
    cell(row, number(s.lag));
    cell(row, sparkline(remember("lag:" + key, s.lag)));
    cell(row, number(s.pending));
    cell(row, number(s.waiting));
    cell(row, number(s.consumers));
    cell(row, number(s.acked_per_s));
    cell(row, number(s.dead_lettered));
  }
  const connBody = document.querySelector("#connections tbody");
  connBody.replaceChildren();
  for (const c of connections) {
    const row = connBody.insertRow();
    cell(row, c.peer);
    cell(row, c.client_name, "name");
    cell(row, c.user || "—", "name");
    cell(row, c.tls ? "yes" : "no");
    cell(row, number(c.bytes_in_per_s));
    cell(row, number(c.bytes_out_per_s));
  }
  const uptime = Math.round((broker.now_ms - broker.started_ms) / 1000);
  document.getElementById("overview").innerHTML = "";
  for (const text of [
      "version " + broker.version, "up " + uptime + " s", "fsync " + broker.fsync,
      "storage " + (broker.storage_writable ? "writable" : "FAULT: " + broker.storage_fault),
      "published/s " + number(inRate), "acked/s " + number(ackRate),
      "connections " + broker.connections, "topics " + broker.topics,
      "memory " + number(broker.memory.cached + broker.memory.output) + " of " +
        number(broker.memory.budget) + " B"]) {
    const span = document.createElement("span");
    span.textContent = text;
    document.getElementById("overview").appendChild(span);
  }
}

async function poll() {
  try {
    const [broker, topics, subscriptions, connections] = await Promise.all(
        ["/api/broker", "/api/topics", "/api/subscriptions", "/api/connections"].map(get));
    render(broker, topics, subscriptions, connections);
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "cannot reach the broker: " + e.message;
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body></html>
)PAGE";

}  // namespace tern
