// Tesla-Amber-Sync: small progressive enhancements. Pages work fully without this file.
"use strict";
document.addEventListener("submit", function (event) {
  // Ask before destructive actions; the button says what will happen in data-confirm.
  var button = event.submitter || event.target.querySelector("[data-confirm]");
  var message = button && button.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
