// campaign.js: keeps a running campaign's page current. Every period it
// fetches the page again (same-origin, with the session cookie) and
// swaps in its live part, #campaign-live: no reload, so the reader keeps
// where they scrolled to on a phone and what they typed elsewhere. It
// stops once the campaign has ended (the new part has no data-refresh)
// and while the tab is hidden; the page is whole without it.
(function () {
  "use strict";
  var live = document.getElementById("campaign-live");
  if (!live) { return; }
  var period = (parseInt(live.getAttribute("data-refresh"), 10) || 0) * 1000;
  if (period <= 0) { return; }
  var busy = false;
  function refresh() {
    var cur = document.getElementById("campaign-live");
    if (busy || document.hidden || !cur || !cur.getAttribute("data-refresh")) { return; }
    // Not while a form of the page is being used.
    var a = document.activeElement;
    if (a && cur.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) { return; }
    busy = true;
    // Without ?done=: the notice of the action that led here is said once.
    var u = new URL(location.href);
    u.searchParams.delete("done");
    fetch(u.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("campaign-live");
        if (!next) { return; }
        cur.replaceWith(document.importNode(next, true));
        document.documentElement.setAttribute("data-refreshed", new Date().toISOString());
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { busy = false; });
  }
  setInterval(refresh, period);
})();
