// The worker's identity (under the header), the GPUs (or why there are none: the host instead), energy and
// kudos per kWh. Rendered from the snapshot dashboard.js fetches, announced as a "worker-status" event.
// Names come from outside (GPU names, the horde's version): textContent only.
"use strict";

(() => {
  const byId = (id) => document.getElementById(id);
  const fixed = (value, digits) => value.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const gigabytes = (mb) => `${fixed(mb / 1024, 1)} GB`;
  const orDash = (value, show) => (value === null || value === undefined ? "–" : show(value));

  function identityParts(identity) {
    const parts = [];
    parts.push(`horde ${identity.horde_version ? "v" + identity.horde_version : "version unknown"}`);
    parts.push(identity.worker_id ? `worker id ${identity.worker_id}` : "worker id not known yet");
    parts.push(identity.bridge_agent);
    parts.push(`reGen ${identity.worker_version}`);
    const models = identity.models_offered.length;
    parts.push(`${models} model${models === 1 ? "" : "s"} offered`);
    return parts;
  }

  function renderIdentity(identity) {
    const line = byId("identity");
    if (!identity) { line.textContent = "–"; return; }
    const backend = document.createElement("span");
    backend.textContent = identity.backend.label;
    backend.className = identity.backend.kind === "fake" ? "fake" : "";
    line.replaceChildren(backend, ` · ${identityParts(identity).join(" · ")}`);
    line.title = identity.models_offered.join(", ");
  }

  function gpuRow(gpu) {
    const vram = gpu.vram_used_mb === null || gpu.vram_total_mb === null
      ? "–" : `${gigabytes(gpu.vram_used_mb)} / ${gigabytes(gpu.vram_total_mb)}`;
    const limit = gpu.power_limit_w === null ? "" : ` / ${fixed(gpu.power_limit_w, 0)} W`;
    // A GPU this worker's slots do not run on: shown, but its energy is not in kudos per kWh.
    const unused = gpu.used === false ? " (not used)" : "";
    return [
      `${gpu.index}: ${gpu.name}${unused}`, vram,
      orDash(gpu.utilisation_pct, (v) => `${fixed(v, 0)} %`),
      orDash(gpu.temperature_c, (v) => `${fixed(v, 0)} °C`),
      gpu.power_w === null ? "not reported" : `${fixed(gpu.power_w, 0)} W${limit}`,
    ];
  }

  function renderGpus(telemetry) {
    const body = byId("gpus");
    body.replaceChildren();
    const gpus = telemetry ? telemetry.gpus : [];
    for (const gpu of gpus) {
      const tr = body.insertRow();
      if (gpu.used === false) tr.className = "unused";
      for (const cell of gpuRow(gpu)) tr.insertCell().textContent = cell;
    }
    if (gpus.length === 0) {
      const td = body.insertRow().insertCell();
      td.colSpan = 5;
      td.className = "label";
      td.textContent = telemetry && telemetry.note ? telemetry.note : "not sampled yet";
    }
    byId("telemetry-note").textContent = telemetry && telemetry.note ? telemetry.note : "";
    const host = telemetry && telemetry.host;
    byId("host").textContent = host
      ? `CPU ${fixed(host.cpu_pct, 0)} % · RAM ${gigabytes(host.ram_used_mb)} / ${gigabytes(host.ram_total_mb)}`
      : "not sampled yet";
  }

  function renderEnergy(telemetry) {
    const ratio = telemetry ? telemetry.kudos_per_kwh : null;
    byId("kudos-per-kwh").textContent = ratio === null ? "–" : fixed(ratio, 0);
    byId("energy").textContent = !telemetry ? ""
      : telemetry.available ? `${fixed(telemetry.energy_kwh * 1000, 1)} Wh of GPU energy so far`
        : "no GPU power readings";
  }

  document.addEventListener("worker-status", (event) => {
    const snap = event.detail;
    renderIdentity(snap.identity);
    renderGpus(snap.telemetry);
    renderEnergy(snap.telemetry);
  });
})();
