// Live regions: every element with data-live and an id is refreshed from the same URL every 5 s (no reload),
// and announced politely to screen readers. Pauses while the tab is hidden or a form field has focus; stops
// for good once the session has ended (the server redirects to the login page), so an open tab does not keep
// knocking with a dead cookie.
(function () {
  function refresh() {
    var live = document.querySelectorAll("[data-live][id]");
    if (!live.length) return;
    if (document.hidden || (document.activeElement && /INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName))) {
      setTimeout(refresh, 5000);
      return;
    }
    fetch(window.location.href, {cache: "no-store", credentials: "same-origin"}).then(function (r) {
      if (r.redirected) { throw new Error("signed out"); }
      if (!r.ok) throw new Error("failed");
      return r.text();
    }).then(function (html) {
      var next = new DOMParser().parseFromString(html, "text/html");
      live.forEach(function (el) {
        var fresh = next.getElementById(el.id);
        if (fresh && fresh.innerHTML !== el.innerHTML) { el.innerHTML = fresh.innerHTML; }
        el.setAttribute("aria-live", "polite");
      });
      setTimeout(refresh, 5000);
    }).catch(function (e) { if (e.message !== "signed out") setTimeout(refresh, 15000); });
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(refresh, 5000); });
})();
