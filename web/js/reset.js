// reset.js: without a token, asks for a reset link; with ?token= (from the
// mailed link), sets the new password.
(function () {
  'use strict';
  var A = window.egovAccount;

  function init() {
    var token = A.query('token');
    if (token) {
      var url = new URL(window.location.href);
      url.searchParams.delete('token');
      window.history.replaceState(null, '', url.pathname + url.search);
      document.querySelector('[data-step="request"]').hidden = true;
      document.querySelector('[data-step="new"]').hidden = false;
    }
    var req = document.getElementById('request-form');
    req.addEventListener('submit', function (ev) {
      ev.preventDefault();
      A.clearErrors();
      var errs = A.missing(req);
      if (errs.length) { A.showErrors(errs); return; }
      A.busy(req, true);
      A.api('POST', '/password/reset', { email: req.email.value.trim() }).then(function (res) {
        A.busy(req, false);
        if (res.status === 202) A.showStep('sent');
        else A.showErrors([A.problemError(res, req, req.email)]);
      });
    });
    var nw = document.getElementById('new-form');
    nw.addEventListener('submit', function (ev) {
      ev.preventDefault();
      A.clearErrors();
      var errs = A.missing(nw);
      if (errs.length) { A.showErrors(errs); return; }
      A.busy(nw, true);
      A.api('POST', '/password/reset/confirm', { token: token, password: nw.password.value }).then(function (res) {
        A.busy(nw, false);
        if (res.status === 204) A.showStep('done');
        else A.showErrors([A.problemError(res, nw, nw.password)]);
      });
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
