// Move focus to the error summary so keyboard and screen-reader users land on it
// (autofocus alone is not honoured by every browser on a non-form element).
(function () {
  "use strict";
  var summary = document.querySelector("[data-role=error-summary]");
  if (summary) { summary.focus(); }
})();
