// verify.js: confirms an e-mail address with the token from the mailed
// link, then drops the token from the address bar (and so from history and
// Referer headers).
(function () {
  'use strict';
  var A = window.egovAccount;

  function show(state) {
    document.querySelectorAll('[data-show]').forEach(function (el) { el.hidden = el.dataset.show !== state; });
    var box = document.querySelector('[data-state]');
    box.dataset.state = state;
  }

  function init() {
    var token = A.query('token');
    var url = new URL(window.location.href);
    url.searchParams.delete('token');
    window.history.replaceState(null, '', url.pathname + url.search);
    if (!token) { show('fail'); return; }
    A.api('POST', '/verify-email', { token: token }).then(function (res) {
      show(res.status === 204 ? 'ok' : 'fail');
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
