// Live updates: each page has one #live element with data-events; the
// server pushes its freshly rendered HTML once a second.
(function () {
  "use strict";
  const dot = document.getElementById("live-dot");
  const live = document.getElementById("live");
  if (live && live.dataset.events && window.EventSource) {
    const es = new EventSource(live.dataset.events);
    es.addEventListener("live", (e) => { live.innerHTML = e.data; dot && dot.classList.add("on"); });
    es.onerror = () => dot && dot.classList.remove("on");
  }

  // Buttons that POST to the JSON API after a confirmation, with the page's
  // CSRF token.
  const csrf = (document.querySelector('meta[name="weir-csrf"]') || {}).content || "";
  const toast = document.getElementById("toast");
  function say(text) { if (toast) { toast.textContent = text; toast.hidden = false; } }
  document.querySelectorAll("button[data-post]").forEach((b) => {
    b.addEventListener("click", async () => {
      if (!confirm(b.dataset.confirm)) return;
      b.disabled = true;
      say("Working…");
      try {
        const r = await fetch(b.dataset.post, { method: "POST", headers: { "X-Weir-Csrf": csrf } });
        const body = await r.json();
        say(r.ok ? (body.location ? "Savepoint written to " + body.location : "Job is canceling.") : "Failed: " + body.error);
      } catch (err) { say("Failed: " + err); }
      b.disabled = false;
    });
  });

  // The tail panel streams sampled records of one operator.
  const tail = document.getElementById("tail");
  if (!tail) return;
  const list = document.getElementById("tail-list");
  const toggle = document.getElementById("tail-toggle");
  const op = document.getElementById("tail-op");
  let es = null;
  const keep = 200;
  function stop() { if (es) { es.close(); es = null; } toggle.textContent = "Start"; toggle.classList.remove("on"); }
  function row(cls, text) { const s = document.createElement("span"); s.className = cls; s.textContent = text; return s; }
  toggle.addEventListener("click", () => {
    if (es) { stop(); return; }
    if (!op.value) return;
    list.textContent = "";
    es = new EventSource("/api/v1/jobs/" + encodeURIComponent(tail.dataset.job) + "/tail?operator=" + encodeURIComponent(op.value));
    toggle.textContent = "Stop"; toggle.classList.add("on");
    es.addEventListener("record", (e) => {
      const r = JSON.parse(e.data);
      const li = document.createElement("li");
      li.className = "tail-record";
      const t = new Date(Number(r.unixMs || 0));
      li.append(row("t", t.toLocaleTimeString([], { hour12: false }) + "." + String(t.getMilliseconds()).padStart(3, "0")),
        row("s", "#" + (r.subtask || 0)), row("v", r.json || r.text || ""));
      list.prepend(li);
      while (list.childElementCount > keep) list.lastElementChild.remove();
    });
    es.addEventListener("error", (e) => { if (e.data) { const li = document.createElement("li"); li.append(row("v", e.data)); list.prepend(li); } stop(); });
  });
})();
