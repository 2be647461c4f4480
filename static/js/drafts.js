// Case page: each form keeps its unsaved input when another form on the page is saved.
// Saving one form reloads the page; the other forms' unsaved values are kept in this tab's
// sessionStorage (gone when the tab closes, cleared on log-out) and put back with a notice.
(function () {
  "use strict";
  var PREFIX = "lesiontrack:draft:" + window.location.pathname + ":";
  var forms = document.querySelectorAll("form[data-draft]");

  function fields(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.name !== "csrfmiddlewaretoken" && el.type !== "file" && el.type !== "submit" &&
        el.type !== "button";
    });
  }

  function read(form) {
    var values = {};
    fields(form).forEach(function (el) {
      if (el.type === "checkbox" || el.type === "radio") {
        values[el.name] = values[el.name] || [];
        if (el.checked) { values[el.name].push(el.value); }
      } else {
        values[el.name] = el.value;
      }
    });
    return values;
  }

  function write(form, values) {
    fields(form).forEach(function (el) {
      if (!(el.name in values)) { return; }
      if (el.type === "checkbox" || el.type === "radio") {
        el.checked = values[el.name].indexOf(el.value) >= 0;
      } else {
        el.value = values[el.name];
      }
    });
  }

  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

  forms.forEach(function (form) {
    var key = PREFIX + form.dataset.draft;
    var saved = read(form);  // what the server has
    var draft = null;
    try { draft = JSON.parse(window.sessionStorage.getItem(key) || "null"); } catch (e) { draft = null; }
    if (draft && !same(draft, saved)) {
      write(form, draft);
      var notice = document.createElement("p");
      notice.className = "draft-notice";
      notice.setAttribute("role", "status");
      notice.dataset.role = "draft-notice";
      notice.textContent = "Your unsaved changes here were kept while another part of the page was saved. They are not saved yet. ";
      var discard = document.createElement("button");
      discard.type = "button";
      discard.className = "link";
      discard.textContent = "Discard them";
      discard.addEventListener("click", function () {
        write(form, saved);
        window.sessionStorage.removeItem(key);
        notice.remove();
      });
      notice.appendChild(discard);
      form.insertBefore(notice, form.firstChild.nextSibling);
    } else if (draft) {
      window.sessionStorage.removeItem(key);
    }
    function remember() {
      var now = read(form);
      if (same(now, saved)) { window.sessionStorage.removeItem(key); } else {
        window.sessionStorage.setItem(key, JSON.stringify(now));
      }
    }
    form.addEventListener("input", remember);
    form.addEventListener("change", remember);
    // This form's own values go to the server: no draft to keep.
    form.addEventListener("submit", function () { window.sessionStorage.removeItem(key); });
  });

  var logout = document.querySelector("form[action$='/accounts/logout/']");
  if (logout) {
    logout.addEventListener("submit", function () {
      Object.keys(window.sessionStorage).forEach(function (k) {
        if (k.indexOf("lesiontrack:draft:") === 0) { window.sessionStorage.removeItem(k); }
      });
    });
  }
})();
