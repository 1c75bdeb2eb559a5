// live.js: refreshes the fleet overview's headline numbers every 15 s from
// GET /api/v1/fleet (same-origin, with the session cookie). Polling was
// chosen over SSE or htmx: one small request, no open connection per
// browser tab, nothing to vendor, and the page is whole without it.
(function () {
  "use strict";
  var period = 15000;
  function set(key, n) {
    var el = document.querySelector('[data-live="' + key + '"]');
    // With the page language's thousands separators, as the server wrote it.
    if (el && typeof n === "number") { el.textContent = n.toLocaleString(document.documentElement.lang || "en"); }
  }
  function refresh() {
    if (document.hidden) { return; }
    fetch("/api/v1/fleet", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (f) {
        if (!f) { return; }
        set("total", f.total);
        set("online", f.online);
        set("offline", f.offline);
        set("never-connected", f.never_connected);
        set("incidents", (f.open_incidents || []).length);
        Object.keys(f.flagged || {}).forEach(function (k) { set("flag-" + k, f.flagged[k]); });
        document.documentElement.setAttribute("data-refreshed", new Date().toISOString());
      })
      .catch(function () { /* the next tick tries again */ });
  }
  setInterval(refresh, period);
})();
