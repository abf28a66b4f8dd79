// CaseConsultant desk: keyboard shortcuts and the live preview. No inline scripts anywhere (CSP);
// the page works without this file.
(function () {
  "use strict";
  var draft = document.getElementById("draft");
  var preview = document.getElementById("preview");
  if (draft && preview) {
    // textContent, never innerHTML: the draft is text and stays text.
    draft.addEventListener("input", function () { preview.textContent = draft.value; });
  }
  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }
  function click(id) {
    var el = document.getElementById(id);
    if (el) { el.click(); return true; }
    return false;
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var handled = false;
    if (event.key === "n") {
      handled = click("next-link");
    } else if (event.key === "c") {
      handled = click("claim-button");
    } else if (event.key === "e" && draft) {
      draft.focus();
      handled = true;
    } else if (event.key === "a") {
      if (document.getElementById("approve-button") && window.confirm("Approve this answer and send it?")) {
        click("approve-button");
      }
      handled = true;
    } else if (event.key === "/") {
      var search = document.getElementById("code-q");
      if (search) { search.focus(); } else { window.location.href = "/codes"; }
      handled = true;
    }
    if (handled) { event.preventDefault(); }
  });
})();
