// register.js: resident self-registration; on success the page shows the
// "check your e-mail" step (the verification mail is queued by the API).
(function () {
  'use strict';
  var A = window.egovAccount;

  function init() {
    var form = document.getElementById('register-form');
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      A.clearErrors();
      var errs = A.missing(form);
      if (errs.length) { A.showErrors(errs); return; }
      A.busy(form, true);
      A.api('POST', '/register', {
        name: form.elements.namedItem('name').value.trim(),
        email: form.email.value.trim(),
        password: form.password.value,
        locale: document.documentElement.lang,
      }).then(function (res) {
        A.busy(form, false);
        if (res.status === 201) A.showStep('done');
        else A.showErrors([A.problemError(res, form, form.email)]);
      });
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
