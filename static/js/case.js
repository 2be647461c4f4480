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
          if (button.dataset.alt) { img.alt = button.dataset.alt; }
          var legend = card.querySelector("[data-role=heat-legend]");
          if (legend) { legend.hidden = button.dataset.layer !== "heatmap"; }
          card.querySelectorAll("[data-layer]").forEach(function (b) {
            b.setAttribute("aria-pressed", b === button ? "true" : "false");
          });
        });
      });
    });
  }

  // Polling neither keeps the session alive nor runs forever: the server answers poll=false once
  // the clinician has been idle a while, and any answer that is not ours (login page after the
  // session ended, an error) stops it too. A reload starts it again.
  var POLL_MS = 2000;
  var POLL_LIMIT_MS = 30 * 60 * 1000;
  var started = Date.now();

  function cardUrl(captureId) {
    var section = document.getElementById("captures");
    return section.dataset.cardUrl.replace("/0/", "/" + captureId + "/");
  }

  function refreshCard(captureId) {
    // Fetch the finished capture's card (not the whole page, which would be audited as a view).
    return fetch(cardUrl(captureId), { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok || r.redirected) { throw new Error("card unavailable"); }
        return r.text();
      })
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
    if (Date.now() - started > POLL_LIMIT_MS) { return stopPolling(section); }
    var keepPolling = true;
    fetch(section.dataset.statusUrl, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok || r.redirected) { keepPolling = false; throw new Error("status unavailable"); }
        return r.json();
      })
      .then(function (data) {
        if (data.poll === false) { keepPolling = false; }
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
      .catch(function () { /* a missed poll is retried on the next tick, unless told to stop */ })
      .then(function () {
        if (keepPolling) { window.setTimeout(poll, POLL_MS); } else { stopPolling(section); }
      });
  }

  function stopPolling(section) {
    section.dataset.polling = "stopped";
    var note = document.createElement("p");
    note.className = "meta";
    note.setAttribute("role", "status");
    note.textContent = "Live status updates paused; reload the page to see the latest results.";
    section.appendChild(note);
  }

  bindToggles(document);
  window.setTimeout(poll, 1000);
  window.lesionTrackPoll = poll;
})();
