// account.js: the account page: profile, sessions (revoke one, log out
// everywhere else, log out), and second-factor enrolment (QR code from the
// API, confirmation, recovery codes shown once). Without a session the API
// answers 401 and the page sends the person to log in and come back.
(function () {
  'use strict';
  var A = window.egovAccount;
  var lang = document.documentElement.lang;

  function toLogin() {
    window.location.assign('/login.html?return=' + encodeURIComponent('/account.html'));
  }

  function when(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return iso;
    try {
      return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(d);
    } catch (e) {
      return d.toISOString();
    }
  }

  function fail(res) {
    if (res.status === 401) { toLogin(); return true; }
    A.showErrors([A.problemError(res, null, null)]);
    return false;
  }

  function loadSessions() {
    return A.api('GET', '/sessions').then(function (res) {
      if (res.status !== 200) return fail(res);
      var body = document.querySelector('[data-sessions]');
      var tpl = document.getElementById('session-row');
      body.textContent = '';
      res.data.items.forEach(function (s) {
        var row = tpl.content.firstElementChild.cloneNode(true);
        var agent = s.user_agent || A.msg('unknown-device');
        row.querySelector('[data-col="agent"]').textContent = agent;
        row.querySelector('[data-col="ip"]').textContent = s.ip;
        row.querySelector('[data-col="seen"]').textContent = when(s.last_seen_at);
        var btn = row.querySelector('[data-revoke]');
        if (s.current) {
          row.querySelector('[data-current]').hidden = false;
          btn.remove();
        } else {
          // The visible text starts the name (WCAG 2.5.3), the device tells the rows apart.
          btn.setAttribute('aria-label', btn.textContent.trim() + ' (' + agent + ', ' + s.ip + ')');
          btn.addEventListener('click', function () {
            A.api('DELETE', '/sessions/' + encodeURIComponent(s.id)).then(function (r) {
              if (r.status !== 204 && fail(r)) return;
              loadSessions().then(function () { document.getElementById('sessions-heading').focus(); });
            });
          });
        }
        row.dataset.session = s.id;
        body.appendChild(row);
      });
    });
  }

  function showTotp(state) {
    document.querySelectorAll('[data-totp]').forEach(function (el) { el.hidden = el.dataset.totp !== state; });
  }

  function init() {
    A.api('GET', '/me').then(function (res) {
      if (res.status !== 200) { fail(res); return; }
      var a = res.data.account;
      A.setCsrf(res.data.csrf);
      document.querySelector('[data-field="display_name"]').textContent = a.display_name;
      document.querySelector('[data-field="email"]').textContent = a.email;
      document.querySelector('[data-field="created_at"]').textContent = when(a.created_at);
      document.querySelector('[data-field="acr"]').textContent = A.msg('acr-' + res.data.session.acr);
      showTotp(a.totp_enabled ? 'on' : 'off');
      document.querySelector('[data-loading]').hidden = true;
      document.querySelector('[data-signed-in]').hidden = false;
      loadSessions();
    });

    document.getElementById('logout-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      A.api('POST', '/logout', {}).then(function (res) {
        if (res.status === 204 || res.status === 401) window.location.assign('/login.html');
        else fail(res);
      });
    });

    document.querySelector('[data-revoke-all]').addEventListener('click', function () {
      A.api('POST', '/sessions/revoke-all', {}).then(function (res) {
        if (res.status !== 200) { fail(res); return; }
        document.querySelector('[data-sessions-status]').textContent = A.msg('revoked') + ' ' + res.data.revoked;
        loadSessions();
      });
    });

    document.querySelector('[data-totp-start]').addEventListener('click', function () {
      A.clearErrors();
      A.api('POST', '/totp/enrol', {}).then(function (res) {
        if (res.status !== 200) { fail(res); return; }
        var svg = res.data.qr_svg;
        var bytes = new TextEncoder().encode(svg);
        var bin = '';
        bytes.forEach(function (b) { bin += String.fromCharCode(b); });
        document.querySelector('[data-qr]').src = 'data:image/svg+xml;base64,' + btoa(bin);
        document.querySelector('[data-secret]').textContent = res.data.secret;
        showTotp('enrol');
        document.getElementById('totp-code').focus();
      });
    });

    var form = document.getElementById('totp-form');
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      A.clearErrors();
      var errs = A.missing(form);
      if (errs.length) { A.showErrors(errs); return; }
      A.busy(form, true);
      A.api('POST', '/totp/confirm', { code: form.code.value.replace(/\s+/g, '') }).then(function (res) {
        A.busy(form, false);
        if (res.status !== 200) { A.showErrors([A.problemError(res, form, form.code)]); return; }
        var list = document.querySelector('[data-codes]');
        list.textContent = '';
        res.data.recovery_codes.forEach(function (c) {
          var li = document.createElement('li');
          li.textContent = c;
          list.appendChild(li);
        });
        showTotp('codes');
        document.querySelector('[data-totp="on"]').hidden = false;
        document.getElementById('codes-heading').focus();
      });
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
