// Image-quality hint while previewing the webcam: the same measures as ml/quality.py (variance of
// the Laplacian on a grey copy 256 px on its long side, clipped highlights, crushed shadows), with
// the server's thresholds read from the page, so the hint and the stored verdict agree.
(function () {
  "use strict";
  var SIDE = 256;

  function greyCopy(source, width, height) {
    var scale = SIDE / Math.max(width, height);
    var w = Math.max(1, Math.round(width * scale)), h = Math.max(1, Math.round(height * scale));
    var canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    var ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(source, 0, 0, w, h);
    var rgba = ctx.getImageData(0, 0, w, h).data;
    var grey = new Float32Array(w * h);
    for (var i = 0, j = 0; j < grey.length; i += 4, j++) {
      grey[j] = 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
    }
    return { grey: grey, w: w, h: h };
  }

  function measure(source, width, height) {
    var g = greyCopy(source, width, height), grey = g.grey, w = g.w, h = g.h;
    var sum = 0, sumSq = 0, n = 0, bright = 0, dark = 0;
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        var k = y * w + x, v = grey[k];
        if (v >= 250) { bright++; }
        if (v <= 5) { dark++; }
        // 5-point Laplacian with reflected edges, as scipy.ndimage.laplace.
        var up = grey[(y > 0 ? y - 1 : 0) * w + x], down = grey[(y < h - 1 ? y + 1 : h - 1) * w + x];
        var left = grey[y * w + (x > 0 ? x - 1 : 0)], right = grey[y * w + (x < w - 1 ? x + 1 : w - 1)];
        var lap = up + down + left + right - 4 * v;
        sum += lap;
        sumSq += lap * lap;
        n++;
      }
    }
    var mean = sum / n;
    return { laplacianVariance: sumSq / n - mean * mean, clippedHighlights: bright / n, crushedShadows: dark / n };
  }

  function verdict(measures, limits) {
    var issues = [];
    if (measures.laplacianVariance < limits.minLaplacianVariance) { issues.push("blurred: hold still and focus"); }
    if (measures.clippedHighlights > limits.maxClippedHighlights) { issues.push("over-exposed: less light or glare"); }
    if (measures.crushedShadows > limits.maxCrushedShadows) { issues.push("too dark: add light"); }
    return issues;
  }

  window.lesionTrackQuality = { measure: measure, verdict: verdict };
})();
