// Webcam capture inside the case page: live preview, take, retake, save (multipart + CSRF).
(function () {
  "use strict";
  var root = document.getElementById("webcam");
  if (!root) { return; }
  var video = root.querySelector("[data-role=preview]");
  var canvas = root.querySelector("[data-role=still]");
  var message = root.querySelector("[data-role=webcam-message]");
  var buttons = {};
  root.querySelectorAll("[data-action]").forEach(function (b) { buttons[b.dataset.action] = b; });
  var stream = null;
  var hint = root.querySelector("[data-role=quality-hint]");
  var hintTimer = null;
  var limits = {
    minLaplacianVariance: parseFloat(root.dataset.minLaplacianVariance),
    maxClippedHighlights: parseFloat(root.dataset.maxClippedHighlights),
    maxCrushedShadows: parseFloat(root.dataset.maxCrushedShadows)
  };

  function showHint() {
    if (!hint || !window.lesionTrackQuality || video.hidden || !video.videoWidth) { return; }
    var q = window.lesionTrackQuality;
    var issues = q.verdict(q.measure(video, video.videoWidth, video.videoHeight), limits);
    hint.textContent = issues.length ? "Image check: " + issues.join("; ") + "." : "Image check: sharp and well exposed.";
    hint.classList.toggle("warn", issues.length > 0);
  }

  function watchQuality(on) {
    if (hintTimer) { window.clearInterval(hintTimer); hintTimer = null; }
    if (on) { hintTimer = window.setInterval(showHint, 800); } else if (hint) { hint.textContent = ""; }
  }

  function say(text, isError) {
    message.textContent = text;
    message.classList.toggle("error", Boolean(isError));
  }

  function enable(names) {
    Object.keys(buttons).forEach(function (k) { buttons[k].disabled = names.indexOf(k) < 0; });
  }

  // The app answers an expired session with JSON 401 and this message; a proxy in front of it, or a
  // redirect to the login page, answers HTML instead, which must not read as a network failure.
  var SESSION_ENDED = "Your session has ended. Log in again in another tab, then save the picture again.";

  function sessionEnded(r) {
    var login = root.dataset.loginUrl || "/accounts/login/";
    return r.status === 401 || (r.redirected && new URL(r.url, window.location.href).pathname === login);
  }

  // The answer as { ok, data }; an answer that is not JSON gets an error a clinician can act on.
  function readAnswer(r) {
    if ((r.headers.get("Content-Type") || "").indexOf("application/json") < 0) {
      var error = sessionEnded(r) ? SESSION_ENDED
        : "the server answered unexpectedly (HTTP " + r.status + ").";
      return { ok: false, data: { ok: false, error: error } };
    }
    return r.json().then(function (data) { return { ok: r.ok, data: data }; });
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  buttons.start.addEventListener("click", function () {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("This browser cannot use a camera here (a secure https connection is required).", true);
      return;
    }
    navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        canvas.hidden = true;
        enable([]);
        video.addEventListener("loadedmetadata", function () {
          enable(["take"]);
          watchQuality(true);
          say("Camera on. Centre the lesion and take the picture.");
        }, { once: true });
      })
      .catch(function (err) {
        if (err.name === "NotAllowedError" || err.name === "SecurityError") {
          say("Camera permission was denied. Allow camera access for this site, or upload a file instead.", true);
        } else if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
          say("No camera was found. Connect a camera, or upload a file instead.", true);
        } else {
          say("The camera could not be started (" + err.name + "). Upload a file instead.", true);
        }
        enable(["start"]);
      });
  });

  buttons.take.addEventListener("click", function () {
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.hidden = false;
    video.hidden = true;
    watchQuality(false);
    enable(["retake", "save"]);
    say("Picture taken. Save it, or retake.");
  });

  buttons.retake.addEventListener("click", function () {
    canvas.hidden = true;
    video.hidden = false;
    watchQuality(true);
    enable(["take"]);
    say("Camera on. Centre the lesion and take the picture.");
  });

  buttons.save.addEventListener("click", function () {
    enable([]);
    say("Saving…");
    canvas.toBlob(function (blob) {
      var body = new FormData();
      body.append("image", blob, "webcam.png");
      body.append("modality", root.querySelector("[data-role=modality]").value);
      fetch(root.dataset.url, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" }
      })
        .then(readAnswer)
        .then(function (res) {
          if (!res.ok || !res.data.ok) {
            say("Not saved: " + (res.data.error || "server error") + " Your picture is still here; try again.", true);
            enable(["retake", "save"]);
            return;
          }
          if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
          say(res.data.message || ("Saved as capture " + res.data.capture_id + "."));
          window.location.reload();
        })
        .catch(function () {
          say("Not saved: the connection failed. Your picture is still here; try again.", true);
          enable(["retake", "save"]);
        });
    }, "image/png");
  });
})();
