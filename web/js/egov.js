// egov.js: small progressive enhancements; every page works without it.
// It holds no texts (those come from the server-rendered catalogues) and
// uses no eval or inline handlers, so it runs under the strict CSP.
(function () {
  'use strict';

  // An error summary takes focus when the page shows it, so keyboard and
  // screen-reader users land on the list of problems first.
  function focusErrorSummary() {
    var summary = document.querySelector('[data-error-summary]');
    if (summary) summary.focus();
    return summary;
  }

  // A link in the summary moves focus to its field and scrolls the field's
  // label (or legend) into view, so the question is visible with the input.
  function onSummaryClick(event) {
    var link = event.target.closest && event.target.closest('a[href^="#"]');
    if (!link) return;
    var input = document.getElementById(decodeURIComponent(link.hash.slice(1)));
    if (!input) return;
    var label = document.querySelector('label[for="' + CSS.escape(input.id) + '"]');
    var fieldset = input.closest('fieldset');
    var legend = fieldset && fieldset.querySelector('legend');
    var target = legend || label || input;
    event.preventDefault();
    target.scrollIntoView();
    input.focus({ preventScroll: true });
  }

  function init() {
    var summary = focusErrorSummary();
    if (summary) summary.addEventListener('click', onSummaryClick);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
