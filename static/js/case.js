// Case page: layer toggles and live analysis status without a manual reload.
(function () {
  "use strict";

  function bindToggles(root) {
    root.querySelectorAll(".capture").forEach(function (card) {
      var img = card.querySelector(".capture-image");
      card.querySelectorAll("[data-layer]").forEach(function (button) {
        button.addEventListener("click", function () {
          var base = img.dataset.base;
          img.src = base.replace(/original\/$/, button.dataset.layer + "/");
          card.querySelectorAll("[data-layer]").forEach(function (b) {
            b.setAttribute("aria-pressed", b === button ? "true" : "false");
          });
        });
      });
    });
  }

  function refreshCard(captureId) {
    // Fetch the page again and swap in the finished capture's card only.
    return fetch(window.location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("capture-" + captureId);
        var current = document.getElementById("capture-" + captureId);
        if (fresh && current) {
          current.replaceWith(fresh);
          bindToggles(fresh.parentNode);
        }
        var note = doc.querySelector("[data-role=lesion-stage-note]");
        var shown = document.querySelector("[data-role=lesion-stage-note]");
        if (note && shown) { shown.textContent = note.textContent; }
      });
  }

  function poll() {
    var section = document.getElementById("captures");
    if (!section) { return; }
    var pending = section.querySelectorAll('.capture[data-pending="true"]');
    if (pending.length === 0) { return; }
    fetch(section.dataset.statusUrl, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var updates = [];
        data.analyses.forEach(function (a) {
          var card = document.getElementById("capture-" + a.capture_id);
          if (!card || card.dataset.status === a.status) { return; }
          // Status values, labels and flags come from the server (lesions.selectors.analysis_statuses).
          card.dataset.status = a.status;
          card.dataset.pending = a.pending ? "true" : "false";
          var label = card.querySelector("[data-role=status]");
          label.textContent = a.label;
          label.className = "status status-" + a.status;
          if (a.finished) { updates.push(refreshCard(a.capture_id)); }
        });
        return Promise.all(updates);
      })
      .catch(function () { /* a missed poll is retried on the next tick */ })
      .then(function () { window.setTimeout(poll, 2000); });
  }

  bindToggles(document);
  window.setTimeout(poll, 1000);
  window.lesionTrackPoll = poll;
})();
