// Tesla-Amber-Sync: small progressive enhancements. Every page works fully without this file.
"use strict";

document.addEventListener("submit", function (event) {
  // Ask before destructive actions; the button says what will happen in data-confirm.
  var button = event.submitter || event.target.querySelector("[data-confirm]");
  var message = button && button.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

(function menu() {
  // Wide screens show the menu inline; where ::details-content is not supported, open it there.
  var menu = document.querySelector("details.site-menu");
  if (menu && window.matchMedia("(min-width: 48.01rem)").matches) {
    menu.open = true;
  }
})();

(function dashboard() {
  var meta = document.querySelector('meta[name="dashboard-refresh"]');
  if (!meta) {
    return;
  }
  var url = meta.getAttribute("content");
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var REFRESH_MS = 30000;

  function refresh() {
    // Only while someone is looking: each refresh may read the battery from Tesla (billed).
    if (document.hidden) {
      return Promise.resolve();
    }
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        Object.keys(data.html).forEach(function (part) {
          var section = document.querySelector('[data-part="' + part + '"]');
          // Never replace a part the user is working in: it would drop their choices and the focus.
          if (section && !section.hasAttribute("data-editing") && !section.contains(document.activeElement)) {
            section.innerHTML = data.html[part];
          }
        });
        var stamp = document.querySelector("[data-updated]");
        if (stamp) {
          stamp.textContent = data.updated_label;
          stamp.classList.remove("stale");
        }
      })
      .catch(function () {
        var stamp = document.querySelector("[data-updated]");
        if (stamp) {
          stamp.classList.add("stale");
        }
      });
  }

  // A part with a changed form control is "being edited" until its form is submitted.
  ["input", "change"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var section = event.target.closest && event.target.closest("[data-part]");
      if (section && event.target.form) {
        section.setAttribute("data-editing", "");
      }
    });
  });
  document.addEventListener("submit", function (event) {
    var section = event.target.closest("[data-part]");
    if (section) {
      section.removeAttribute("data-editing");
    }
  });

  window.setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refresh();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form.sync-now");
    if (!form || event.defaultPrevented) {
      return;
    }
    event.preventDefault();
    var button = form.querySelector("button");
    var result = form.querySelector(".sync-result");
    button.disabled = true;
    result.textContent = "Syncing…";
    fetch(form.getAttribute("data-api"), {
      method: "POST",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json();
      })
      .then(function (data) {
        result.textContent = data.message;
        // The refresh re-renders this part, form included: say the result again in the new form.
        return refresh().then(function () {
          var shown = document.querySelector("form.sync-now .sync-result");
          if (shown) {
            shown.textContent = data.message;
          }
        });
      })
      .catch(function () {
        result.textContent = "The sync could not be started; try again.";
      })
      .then(function () {
        button.disabled = false;
      });
  });
})();
