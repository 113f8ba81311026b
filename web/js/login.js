// login.js: the log-in page: password step, then the second-factor step
// when the API answers next=totp, then back to ?return= (same-site paths
// only). ?acr= is passed on to the certificate log-in link.
(function () {
  'use strict';
  var A = window.egovAccount;

  function init() {
    var ret = A.safeReturn(A.query('return'), '/account.html');
    var acr = A.query('acr');
    var cert = document.querySelector('[data-cert-link]');
    var params = new URLSearchParams();
    params.set('return', ret);
    if (acr && /^[1-3]$/.test(acr)) params.set('acr', acr);
    cert.href = '/login/certificate?' + params.toString();

    function done() { window.location.assign(ret); }

    function submitter(form, call) {
      form.addEventListener('submit', function (ev) {
        ev.preventDefault();
        A.clearErrors();
        var errs = A.missing(form);
        if (errs.length) { A.showErrors(errs); return; }
        A.busy(form, true);
        call().then(function (res) {
          A.busy(form, false);
          if (res.status === 200 && res.data && res.data.next === 'totp') {
            A.showStep('totp');
            document.getElementById('code').focus();
          } else if (res.status === 200) {
            done();
          } else {
            A.showErrors([A.problemError(res, form, form.querySelector('input'))]);
          }
        });
      });
    }

    var login = document.getElementById('login-form');
    submitter(login, function () {
      return A.api('POST', '/login', { email: login.email.value.trim(), password: login.password.value });
    });
    var totp = document.getElementById('totp-form');
    submitter(totp, function () {
      return A.api('POST', '/login/totp', { code: totp.code.value.replace(/\s+/g, '') });
    });
    var rec = document.getElementById('recovery-form');
    submitter(rec, function () {
      return A.api('POST', '/login/totp', { recovery_code: rec.recovery_code.value.trim() });
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
