// Comparison view: synchronised zoom and pan of both captures, fade and blink of the later capture
// laid over the earlier one (aligned on the lesion's centre, scaled by pixel spacing when both are
// calibrated), the earlier outline drawn on the later image, and ← / → for the previous/next pair.
(function () {
  "use strict";
  var root = document.getElementById("compare");
  var nav = document.querySelector("[data-role=pair-nav]");

  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea" || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    if (nav && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      var link = nav.querySelector(event.key === "ArrowLeft" ? "[data-role=previous]" : "[data-role=next]");
      if (link) { event.preventDefault(); window.location.assign(link.href); }
    } else if (root && (event.key === "+" || event.key === "=")) {
      zoomBy(1.25);
    } else if (root && event.key === "-") {
      zoomBy(0.8);
    }
  });
  if (!root) { return; }

  var d = root.dataset;
  var aligned = d.scale !== undefined;
  var state = { zoom: 1, x: 0, y: 0 };
  var stages = root.querySelectorAll(".stage");
  var panes = root.querySelector("[data-role=panes]");
  var beforePane = root.querySelector("[data-role=before]");
  var afterPane = root.querySelector("[data-role=after]");
  var fadeControl = root.querySelector(".fade-control");
  var fade = root.querySelector("[data-role=fade]");
  var blinkTimer = null;
  var overlay = null;

  function apply() {
    stages.forEach(function (stage) {
      stage.style.transform = "translate(" + state.x + "px, " + state.y + "px) scale(" + state.zoom + ")";
    });
  }

  function zoomBy(factor, cx, cy) {
    var viewport = beforePane.querySelector(".viewport");
    var rect = viewport.getBoundingClientRect();
    cx = cx === undefined ? rect.width / 2 : cx;
    cy = cy === undefined ? rect.height / 2 : cy;
    var zoom = Math.min(8, Math.max(1, state.zoom * factor));
    // Keep the point under the pointer where it is.
    state.x = cx - (cx - state.x) * zoom / state.zoom;
    state.y = cy - (cy - state.y) * zoom / state.zoom;
    state.zoom = zoom;
    if (zoom === 1) { state.x = 0; state.y = 0; }
    apply();
  }

  root.querySelectorAll("[data-zoom]").forEach(function (button) {
    button.addEventListener("click", function () {
      var kind = button.dataset.zoom;
      if (kind === "reset") { state = { zoom: 1, x: 0, y: 0 }; apply(); } else { zoomBy(kind === "in" ? 1.25 : 0.8); }
    });
  });

  root.querySelectorAll(".viewport").forEach(function (viewport) {
    viewport.addEventListener("wheel", function (event) {
      event.preventDefault();
      var rect = viewport.getBoundingClientRect();
      zoomBy(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - rect.left, event.clientY - rect.top);
    }, { passive: false });
    var drag = null;
    viewport.addEventListener("pointerdown", function (event) {
      drag = { x: event.clientX, y: event.clientY, sx: state.x, sy: state.y };
      viewport.setPointerCapture(event.pointerId);
    });
    viewport.addEventListener("pointermove", function (event) {
      if (!drag) { return; }
      state.x = drag.sx + event.clientX - drag.x;
      state.y = drag.sy + event.clientY - drag.y;
      apply();
    });
    ["pointerup", "pointercancel"].forEach(function (type) {
      viewport.addEventListener(type, function () { drag = null; });
    });
  });

  function num(name) { return parseFloat(d[name]); }

  // The later capture, placed in the earlier one's frame: centroids meet, calibrated scale.
  function buildOverlay() {
    if (overlay || !aligned) { return overlay; }
    var later = afterPane.querySelector("img");
    overlay = later.cloneNode(false);
    overlay.removeAttribute("width");
    overlay.removeAttribute("height");
    overlay.className = "aligned-later";
    overlay.alt = "";
    overlay.setAttribute("aria-hidden", "true");
    var scale = num("scale"), bw = num("beforeWidth"), bh = num("beforeHeight");
    overlay.style.width = (num("afterWidth") * scale / bw * 100) + "%";
    overlay.style.left = ((num("beforeCx") - num("afterCx") * scale) / bw * 100) + "%";
    overlay.style.top = ((num("beforeCy") - num("afterCy") * scale) / bh * 100) + "%";
    beforePane.querySelector(".stage").appendChild(overlay);
    return overlay;
  }

  function setMode(mode) {
    root.querySelectorAll("[data-mode]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.mode === mode ? "true" : "false");
    });
    if (blinkTimer) { window.clearInterval(blinkTimer); blinkTimer = null; }
    var layered = mode !== "side";
    panes.classList.toggle("layered", layered);
    afterPane.hidden = layered;
    fadeControl.hidden = mode !== "fade";
    root.dataset.mode = mode;
    if (!layered) { if (overlay) { overlay.hidden = true; } return; }
    var img = buildOverlay();
    img.hidden = false;
    if (mode === "fade") {
      img.style.opacity = fade.value / 100;
    } else {
      img.style.opacity = 1;
      blinkTimer = window.setInterval(function () { img.hidden = !img.hidden; }, 700);
    }
  }

  root.querySelectorAll("[data-mode]").forEach(function (button) {
    button.addEventListener("click", function () { setMode(button.dataset.mode); });
  });
  fade.addEventListener("input", function () { if (overlay) { overlay.style.opacity = fade.value / 100; } });

  // The earlier outline on the later image, mapped through the same alignment.
  function drawEarlierOutline() {
    var canvas = afterPane.querySelector("[data-role=earlier-outline]");
    if (!canvas || !aligned || !d.beforeMask) { return; }
    var mask = new Image();
    mask.onload = function () {
      var w = mask.naturalWidth, h = mask.naturalHeight;
      var work = document.createElement("canvas");
      work.width = w;
      work.height = h;
      var wctx = work.getContext("2d", { willReadFrequently: true });
      wctx.drawImage(mask, 0, 0);
      var px = wctx.getImageData(0, 0, w, h).data;
      var inside = function (x, y) { return x >= 0 && y >= 0 && x < w && y < h && px[(y * w + x) * 4] > 127; };
      canvas.width = num("afterWidth");
      canvas.height = num("afterHeight");
      var ctx = canvas.getContext("2d");
      ctx.fillStyle = "#ff00ff";
      var scale = num("scale"), size = Math.max(1, Math.round(Math.max(canvas.width, canvas.height) / 300));
      var count = 0;
      for (var y = 0; y < h; y++) {
        for (var x = 0; x < w; x++) {
          if (inside(x, y) && (!inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1))) {
            var lx = (x - num("beforeCx")) / scale + num("afterCx");
            var ly = (y - num("beforeCy")) / scale + num("afterCy");
            ctx.fillRect(lx - size / 2, ly - size / 2, size, size);
            count++;
          }
        }
      }
      canvas.dataset.outlinePixels = count;
    };
    mask.src = d.beforeMask;
  }

  drawEarlierOutline();
  apply();
  window.lesionTrackCompare = { state: function () { return state; }, setMode: setMode };
})();
