// Lesion form: place the lesion on the front or back figure with a mouse, a finger or the arrow keys.
// The point is stored as fractions of the figure; the body-site select follows the region under it
// (each region carries its ISIC site in data-site, the same table the server derives the site from).
(function () {
  "use strict";
  var form = document.querySelector("[data-role=lesion-form]");
  if (!form) { return; }
  var SVG_NS = "http://www.w3.org/2000/svg";
  var WIDTH = 200, HEIGHT = 400, STEP = 0.01;
  var inputs = {
    view: form.querySelector("#id_body_map_view"),
    x: form.querySelector("#id_body_map_x"),
    y: form.querySelector("#id_body_map_y")
  };
  var site = form.querySelector("#id_body_site");
  var status = form.querySelector("[data-role=body-map-status]");
  var figures = form.querySelectorAll(".body-figure.interactive");

  function regionAt(svg, fx, fy) {
    var point = svg.createSVGPoint();
    point.x = fx * WIDTH;
    point.y = fy * HEIGHT;
    var regions = svg.querySelectorAll(".region");
    for (var i = 0; i < regions.length; i++) {
      if (regions[i].isPointInFill(point)) { return regions[i]; }
    }
    return null;
  }

  function clearMarkers() {
    form.querySelectorAll(".body-figure .placed").forEach(function (m) {
      var link = m.closest("a");
      (link || m).remove();
    });
  }

  function place(svg, fx, fy) {
    fx = Math.min(1, Math.max(0, fx));
    fy = Math.min(1, Math.max(0, fy));
    var region = regionAt(svg, fx, fy);
    clearMarkers();
    var marker = document.createElementNS(SVG_NS, "circle");
    marker.setAttribute("class", "placed");
    marker.setAttribute("cx", (fx * WIDTH).toFixed(1));
    marker.setAttribute("cy", (fy * HEIGHT).toFixed(1));
    marker.setAttribute("r", "6");
    svg.appendChild(marker);
    svg.dataset.x = fx;
    svg.dataset.y = fy;
    if (!region) {
      inputs.view.value = inputs.x.value = inputs.y.value = "";
      status.textContent = "That point is not on the body; move it onto the figure.";
      return;
    }
    inputs.view.value = svg.dataset.view;
    inputs.x.value = fx.toFixed(4);
    inputs.y.value = fy.toFixed(4);
    site.value = region.dataset.site;
    status.textContent = "Placed on the " + svg.dataset.view + ": " + region.dataset.region +
      " (" + site.options[site.selectedIndex].text + ").";
  }

  figures.forEach(function (svg) {
    svg.addEventListener("click", function (event) {
      var matrix = svg.getScreenCTM();
      if (!matrix) { return; }
      var point = svg.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      var local = point.matrixTransform(matrix.inverse());
      place(svg, local.x / WIDTH, local.y / HEIGHT);
      event.preventDefault();
    });
    svg.addEventListener("keydown", function (event) {
      var moves = { ArrowLeft: [-STEP, 0], ArrowRight: [STEP, 0], ArrowUp: [0, -STEP], ArrowDown: [0, STEP] };
      var move = moves[event.key];
      if (!move && event.key !== "Enter" && event.key !== " ") { return; }
      event.preventDefault();
      var onThis = inputs.view.value === svg.dataset.view || svg.dataset.x !== undefined;
      var x = onThis && svg.dataset.x !== undefined ? parseFloat(svg.dataset.x) : 0.5;
      var y = onThis && svg.dataset.y !== undefined ? parseFloat(svg.dataset.y) : 0.33;
      if (move) { x += move[0] * (event.shiftKey ? 5 : 1); y += move[1] * (event.shiftKey ? 5 : 1); }
      figures.forEach(function (other) { if (other !== svg) { delete other.dataset.x; delete other.dataset.y; } });
      place(svg, x, y);
    });
  });

  // Start from the stored point, if any.
  if (inputs.view.value && inputs.x.value) {
    figures.forEach(function (svg) {
      if (svg.dataset.view === inputs.view.value) {
        svg.dataset.x = inputs.x.value;
        svg.dataset.y = inputs.y.value;
      }
    });
  }

  // Choosing another site from the list drops a point that no longer agrees with it.
  site.addEventListener("change", function () {
    var svg = form.querySelector('.body-figure[data-view="' + inputs.view.value + '"]');
    if (!svg || !inputs.x.value) { return; }
    var region = regionAt(svg, parseFloat(inputs.x.value), parseFloat(inputs.y.value));
    if (!region || region.dataset.site !== site.value) {
      clearMarkers();
      inputs.view.value = inputs.x.value = inputs.y.value = "";
      delete svg.dataset.x;
      delete svg.dataset.y;
      status.textContent = "Point removed: the body site chosen in the list is elsewhere. Click the map to place it again.";
    }
  });

  var clear = form.querySelector("[data-action=clear-point]");
  clear.addEventListener("click", function () {
    clearMarkers();
    inputs.view.value = inputs.x.value = inputs.y.value = "";
    figures.forEach(function (svg) { delete svg.dataset.x; delete svg.dataset.y; });
    status.textContent = "No point placed yet.";
  });
})();
