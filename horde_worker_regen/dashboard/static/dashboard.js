// Polls /status.json every second and renders it; the only write actions are pause and resume.
"use strict";

const POLL_MS = 1000;
let paused = false;

function $(id) { return document.getElementById(id); }

function duration(seconds) {
  const s = Math.floor(seconds);
  const pad = (n) => String(n).padStart(2, "0");
  return `${Math.floor(s / 3600)}:${pad(Math.floor(s % 3600 / 60))}:${pad(s % 60)}`;
}

function number(value, digits) {
  return value.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function megabytes(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }

// Rows are built with textContent only: job keys and fault reasons come from outside.
function fillRows(tbody, rows, emptyText, columns) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    const tr = tbody.insertRow();
    const td = tr.insertCell();
    td.colSpan = columns;
    td.textContent = emptyText;
    td.className = "label";
    return;
  }
  for (const cells of rows) {
    const tr = tbody.insertRow();
    for (const cell of cells) {
      const td = tr.insertCell();
      if (cell instanceof Node) td.append(cell); else td.textContent = cell;
    }
  }
}

function bar(fraction, text) {
  const wrapper = document.createElement("span");
  const outer = document.createElement("span");
  outer.className = "bar";
  const inner = document.createElement("span");
  inner.style.width = `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
  outer.append(inner);
  wrapper.append(outer, document.createTextNode(text));
  return wrapper;
}

function renderSlots(slots) {
  fillRows($("slots"), slots.map((slot) => [
    String(slot.index), slot.state, slot.device ? slot.device.label : "–", slot.model || "–",
    slot.job ? `${slot.job.job.slice(0, 8)} · ${slot.job.images}× ${slot.job.width}×${slot.job.height}` : "–",
    slot.total_steps ? bar(slot.step / slot.total_steps, `${slot.step}/${slot.total_steps}`) : "–",
    `${(slot.duty * 100).toFixed(1)} %`,
  ]), "no slot", 7);
}

function renderModels(models, downloads) {
  $("models-offered").textContent = models.offered.join(", ") || "none yet";
  $("models-disk").textContent = models.on_disk.join(", ") || "none";
  $("models-pending").textContent = models.pending.join(", ") || "none";
  const list = $("downloads");
  list.replaceChildren();
  for (const item of downloads) {
    const li = document.createElement("li");
    const fraction = item.total_bytes ? item.done_bytes / item.total_bytes : 0;
    const eta = item.eta_s === null ? "" : `, ETA ${Math.round(item.eta_s)} s`;
    li.append(`${item.file}: `, bar(fraction, `${megabytes(item.done_bytes)} at ${megabytes(item.bytes_per_second)}/s${eta}`));
    list.append(li);
  }
  if (downloads.length === 0) {
    const li = document.createElement("li");
    li.className = "label";
    li.textContent = "none under way";
    list.append(li);
  }
}

// What the fault breaker withdrew (models no longer offered, features refused), and whether popping stopped.
function showWithdrawn(breaker) {
  const withdrawn = breaker ? breaker.withdrawn : [];
  const names = withdrawn.map((w) => `${w.feature ? "feature" : "model"} ${w.subject}`).join(", ");
  const stopped = breaker && breaker.popping_stopped ? "Not popping: every model is withdrawn. " : "";
  $("withdrawn").hidden = withdrawn.length === 0;
  $("withdrawn").textContent = withdrawn.length ? `${stopped}Withdrawn after repeated faults: ${names}` : "";
}

function renderHordeMessages(messages) {
  const list = $("horde-messages");
  list.hidden = messages.length === 0;
  list.replaceChildren(...messages.map((m) => {
    const item = document.createElement("li");
    item.textContent = `Message from the horde${m.origin ? ` (${m.origin})` : ""}: ${m.message}`;
    return item;
  }));
}

function renderBridge(bridge) {
  $("bridge-level").textContent = bridge.level === null ? "–" : String(bridge.level);
  $("bridge-level").title = bridge.agent;
  $("bridge-note").textContent = `×${number(bridge.kudos_factor, 2)} kudos · ${bridge.reason}`;
}

// The alchemist's section: hidden while alchemy is off; form names and reasons come from outside (textContent).
function renderAlchemy(alchemy) {
  $("alchemy").hidden = !alchemy;
  if (!alchemy) return;
  const totals = alchemy.totals;
  $("alchemy-name").textContent = alchemy.name;
  $("alchemy-state").textContent = alchemy.state;
  $("alchemy-state").className = `badge ${alchemy.state}`;
  $("alchemy-maintenance").hidden = !alchemy.maintenance_message;
  $("alchemy-maintenance").textContent = alchemy.maintenance_message ? `Alchemist in maintenance: ${alchemy.maintenance_message}` : "";
  $("alchemy-done").textContent = String(totals.done);
  $("alchemy-problems").textContent = `${totals.faulted} / ${totals.dropped}`;
  $("alchemy-in-flight").textContent = String(totals.in_flight);
  const lanes = alchemy.in_flight_by_lane;
  $("alchemy-lanes").textContent = `analysis ${lanes.analysis} · post-processing ${lanes.post_processing}`;
  $("alchemy-kudos").textContent = number(totals.kudos, 1);
  $("alchemy-kudos-rate").textContent = `${number(totals.kudos_per_hour, 0)} / hr · no bridge factor`;
  $("alchemy-offered").textContent = `${alchemy.offered.length} / ${alchemy.configured.length}`;
  fillRows($("alchemy-forms"), alchemy.forms.map((form) => {
    const offered = document.createElement("span");
    offered.className = form.offered ? "offered" : "not-offered";
    offered.textContent = form.offered ? "yes" : `no: ${form.reason}`;
    return [form.form, offered, String(form.in_flight), String(form.done), String(form.faulted),
      String(form.dropped), number(form.kudos, 1)];
  }), "no form configured", 7);
  const problem = alchemy.last_problem;
  $("alchemy-last-problem").textContent = problem
    ? `${new Date(problem.at * 1000).toLocaleTimeString()} ${problem.form} ${problem.state}: ${problem.reason}`
    : "none";
}

function render(snap) {
  const worker = snap.worker, totals = snap.totals;
  paused = worker.paused;
  $("name").textContent = worker.name;
  document.title = `${worker.name} · Horde worker`;
  const state = worker.state || (worker.stopping ? "stopping" : (paused ? "paused" : "serving"));
  $("state").textContent = state;
  $("state").className = `badge ${state.split(" ").pop()}`;
  $("horde-url").textContent = worker.horde_url || "–";
  renderHordeMessages(worker.horde_messages || []);
  $("toggle").textContent = paused ? "Resume popping" : "Pause popping";
  $("toggle").disabled = worker.stopping;
  $("maintenance").hidden = !worker.maintenance_message;
  $("maintenance").textContent = worker.maintenance_message ? `Maintenance: ${worker.maintenance_message}` : "";
  showWithdrawn(snap.breaker);
  $("uptime").textContent = duration(worker.uptime_s);
  $("kudos-per-hour").textContent = number(totals.kudos_per_hour, 0);
  $("kudos-session").textContent = number(totals.kudos_session, 1);
  $("kudos-factor").textContent = `submit rewards ×${number(totals.kudos_factor, 2)} bridge factor`;
  renderBridge(snap.bridge);
  const credited = totals.kudos_credited;
  $("kudos-credited").textContent = credited ? number(credited.total, 1) : "not read yet";
  $("kudos-credited-split").textContent = credited
    ? `jobs ${number(credited.jobs, 1)} · uptime ${number(credited.uptime, 1)} · read ${new Date(credited.read_at * 1000).toLocaleTimeString()}`
    : "";
  $("mps").textContent = number(totals.megapixelsteps_per_second, 2);
  $("jobs").textContent = String(totals.jobs);
  $("images").textContent = String(totals.images);
  $("problems").textContent = `${totals.faulted} / ${totals.dropped}`;
  $("idle").textContent = duration(totals.idle_s);
  const images = (worker.roles || ["dreamer"]).includes("dreamer");
  for (const card of document.querySelectorAll(".image-only")) card.hidden = !images;
  renderAlchemy(snap.alchemy);
  renderSlots(snap.slots);
  fillRows($("queue"), snap.queue.concat(snap.finishing).map((job) => [
    job.job.slice(0, 8), job.state, job.model, `${job.images}× ${job.width}×${job.height}`,
  ]), "empty", 4);
  renderModels(snap.models, snap.downloads);
  fillRows($("faults"), snap.faults.map((fault) => [
    new Date(fault.at * 1000).toLocaleTimeString(), fault.job.slice(0, 8), fault.outcome, fault.reason,
  ]), "none", 4);
  $("updated").textContent = new Date().toLocaleTimeString();
  document.dispatchEvent(new CustomEvent("worker-status", { detail: snap }));  // telemetry.js and other views
}

async function poll() {
  try {
    const response = await fetch("/status.json", { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    render(await response.json());
    $("error").hidden = true;
  } catch (error) {
    $("state").textContent = "offline";
    $("state").className = "badge offline";
    $("error").textContent = `Cannot read the worker's status: ${error.message}`;
    $("error").hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

$("toggle").addEventListener("click", async () => {
  $("toggle").disabled = true;
  try {
    const response = await fetch(paused ? "/resume" : "/pause", { method: "POST", credentials: "same-origin" });
    if (response.ok) paused = (await response.json()).paused;
  } finally {
    $("toggle").disabled = false;
    $("toggle").textContent = paused ? "Resume popping" : "Pause popping";
  }
});

poll();
