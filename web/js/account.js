// account.js: the account page: profile, sessions (revoke one, log out
// everywhere else, log out), second-factor enrolment (QR code from the
// API, confirmation, recovery codes shown once), e-certificates (list,
// request with a key made in this browser or as a PKCS#12 bundle,
// download, revoke after a confirmation step) and the applications the
// person allowed (list, withdraw). Without a session the API answers 401
// and the page sends the person to log in and come back.
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

  // ---- e-certificates ----------------------------------------------------
  var urls = [];
  // Object URLs for what was just made; the old ones are let go first.
  function objectUrl(blob) {
    var u = URL.createObjectURL(blob);
    urls.push(u);
    return u;
  }
  function dropUrls() {
    urls.forEach(function (u) { URL.revokeObjectURL(u); });
    urls = [];
  }

  function certsStatus(text) {
    document.querySelector('[data-certs-status]').textContent = text;
  }

  var revokeTarget = null; // { serial, button }

  function loadCerts() {
    return A.api('GET', '/me/certificates').then(function (res) {
      if (res.status !== 200) return fail(res);
      var body = document.querySelector('[data-certs]');
      var tpl = document.getElementById('cert-row');
      body.textContent = '';
      var items = res.data.items;
      document.querySelector('[data-certs-empty]').hidden = items.length > 0;
      document.querySelector('[data-certs-table]').hidden = items.length === 0;
      items.forEach(function (c) {
        var row = tpl.content.firstElementChild.cloneNode(true);
        var label = A.msg('profile-' + c.profile) || c.profile;
        row.dataset.serial = c.serial;
        row.querySelector('[data-col="serial"] code').textContent = c.serial;
        row.querySelector('[data-col="profile"]').textContent = label;
        row.querySelector('[data-col="until"]').textContent = when(c.not_after);
        var tag = row.querySelector('[data-col="status"] .tag');
        tag.textContent = A.msg('status-' + c.status) || c.status;
        tag.classList.add(c.status === 'good' ? 'tag--success' : 'tag--error');
        row.dataset.status = c.status;
        var dl = row.querySelector('[data-cert-download]');
        dl.href = '/api/v1/identity/me/certificates/' + encodeURIComponent(c.serial);
        dl.setAttribute('download', 'egov-' + c.serial + '.pem');
        // The visible text starts the name (WCAG 2.5.3); the serial tells rows apart.
        dl.setAttribute('aria-label', dl.textContent.trim() + ' (' + label + ', ' + c.serial + ')');
        var btn = row.querySelector('[data-cert-revoke]');
        if (c.status !== 'good') {
          btn.remove();
        } else {
          btn.setAttribute('aria-label', btn.textContent.trim() + ' (' + label + ', ' + c.serial + ')');
          btn.addEventListener('click', function () { askRevoke(c.serial, btn); });
        }
        body.appendChild(row);
      });
    });
  }

  function askRevoke(serial, button) {
    A.clearErrors();
    revokeTarget = { serial: serial, button: button };
    document.querySelector('[data-revoke-serial]').textContent = serial;
    document.getElementById('revoke-reason').value = 'unspecified';
    document.querySelector('[data-revoke-confirm]').hidden = false;
    document.getElementById('revoke-heading').focus();
  }

  function closeRevoke(refocus) {
    document.querySelector('[data-revoke-confirm]').hidden = true;
    if (refocus && revokeTarget && revokeTarget.button.isConnected) revokeTarget.button.focus();
    revokeTarget = null;
  }

  function setupCerts() {
    var form = document.getElementById('cert-form');
    var p12Field = document.querySelector('[data-p12-only]');
    var issued = document.querySelector('[data-cert-issued]');

    function method() { return form.querySelector('input[name="method"]:checked').value; }
    function syncMethod() { p12Field.hidden = method() !== 'pkcs12'; }
    form.querySelectorAll('input[name="method"]').forEach(function (r) { r.addEventListener('change', syncMethod); });
    if (!window.egovCsr || !window.egovCsr.available()) {
      // No WebCrypto (not a secure context): only the bundle is possible.
      var browserRadio = document.getElementById('cert-method-browser');
      browserRadio.disabled = true;
      document.getElementById('cert-method-pkcs12').checked = true;
      document.getElementById('cert-method-browser-hint').textContent = A.msg('no-webcrypto');
    }
    syncMethod();

    function showIssued(kind, links) {
      issued.querySelectorAll('[data-issued-text]').forEach(function (p) { p.hidden = p.dataset.issuedText !== kind; });
      ['cert', 'key', 'p12'].forEach(function (k) {
        var a = issued.querySelector('[data-issued-' + k + ']');
        if (links[k]) {
          a.href = links[k].href;
          a.setAttribute('download', links[k].name);
          a.hidden = false;
        } else {
          a.removeAttribute('href');
          a.hidden = true;
        }
      });
      issued.hidden = false;
      document.getElementById('issued-heading').focus();
    }

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      A.clearErrors();
      issued.hidden = true;
      var profile = form.profile.value;
      var how = method();
      if (how === 'pkcs12' && !form.passphrase.value) {
        A.showErrors([{ input: form.passphrase, text: A.msg('required') }]);
        return;
      }
      A.busy(form, true);
      certsStatus(A.msg('cert-working'));
      var done = function () { A.busy(form, false); };
      if (how === 'pkcs12') {
        A.apiRaw('POST', '/me/certificates/pkcs12', { profile: profile, passphrase: form.passphrase.value }).then(function (r) {
          if (!r) { done(); certsStatus(''); A.showErrors([{ input: null, text: A.msg('network') }]); return null; }
          if (r.status !== 201) {
            return r.json().catch(function () { return null; }).then(function (d) {
              done();
              certsStatus('');
              if (r.status === 401) { toLogin(); return; }
              A.showErrors([A.problemError({ status: r.status, data: d }, form, null)]);
            });
          }
          var serial = r.headers.get('X-Certificate-Serial') || 'certificate';
          return r.blob().then(function (blob) {
            done();
            form.passphrase.value = '';
            dropUrls();
            certsStatus(A.msg('cert-issued'));
            showIssued('pkcs12', { p12: { href: objectUrl(blob), name: 'egov-' + serial + '.p12' } });
            return loadCerts();
          });
        });
        return;
      }
      window.egovCsr.generate().then(function (made) {
        return A.api('POST', '/me/certificates', { profile: profile, csr: made.csrPem }).then(function (res) {
          done();
          if (res.status !== 201) {
            certsStatus('');
            if (res.status === 401) { toLogin(); return; }
            A.showErrors([A.problemError(res, form, null)]);
            return;
          }
          dropUrls();
          var pemType = { type: 'application/x-pem-file' };
          certsStatus(A.msg('cert-issued'));
          showIssued('browser', {
            cert: { href: objectUrl(new Blob([res.data.certificate], pemType)), name: 'egov-' + res.data.serial + '.pem' },
            key: { href: objectUrl(new Blob([made.keyPem], pemType)), name: 'egov-' + res.data.serial + '.key.pem' },
          });
          return loadCerts();
        });
      }, function () {
        done();
        certsStatus('');
        A.showErrors([{ input: null, text: A.msg('no-webcrypto') }]);
      });
    });

    document.getElementById('revoke-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (!revokeTarget) return;
      var f = ev.target;
      var serial = revokeTarget.serial;
      A.busy(f, true);
      A.api('POST', '/me/certificates/' + encodeURIComponent(serial) + '/revoke', { reason: f.reason.value }).then(function (res) {
        A.busy(f, false);
        if (res.status !== 200) {
          if (res.status === 401) { toLogin(); return; }
          A.showErrors([A.problemError(res, f, null)]);
          return;
        }
        closeRevoke(false);
        certsStatus(A.msg('cert-revoked') + ' ' + serial);
        loadCerts().then(function () { document.getElementById('certs-heading').focus(); });
      });
    });
    document.querySelector('[data-revoke-cancel]').addEventListener('click', function () { closeRevoke(true); });
    document.querySelector('[data-revoke-confirm]').addEventListener('keydown', function (ev) {
      if (ev.key === 'Escape') closeRevoke(true);
    });
  }

  // ---- applications allowed ----------------------------------------------
  function loadApps() {
    return A.api('GET', '/me/grants').then(function (res) {
      if (res.status !== 200) return fail(res);
      var body = document.querySelector('[data-apps]');
      var tpl = document.getElementById('app-row');
      body.textContent = '';
      var items = res.data.items;
      document.querySelector('[data-apps-empty]').hidden = items.length > 0;
      document.querySelector('[data-apps-table]').hidden = items.length === 0;
      items.forEach(function (g) {
        var row = tpl.content.firstElementChild.cloneNode(true);
        row.dataset.client = g.client_id;
        row.querySelector('[data-col="name"]').textContent = g.name;
        var list = row.querySelector('[data-col="scopes"] ul');
        g.scopes.forEach(function (sc) {
          var li = document.createElement('li');
          li.className = 'tag';
          li.textContent = sc;
          list.appendChild(li);
        });
        row.querySelector('[data-col="granted"]').textContent = when(g.granted_at);
        var btn = row.querySelector('[data-withdraw]');
        btn.setAttribute('aria-label', btn.textContent.trim() + ' (' + g.name + ')');
        btn.addEventListener('click', function () {
          A.clearErrors();
          btn.disabled = true;
          A.api('DELETE', '/me/grants/' + encodeURIComponent(g.client_id)).then(function (r) {
            if (r.status !== 204) { btn.disabled = false; fail(r); return; }
            document.querySelector('[data-apps-status]').textContent = A.msg('app-withdrawn') + ' ' + g.name;
            loadApps().then(function () { document.getElementById('apps-heading').focus(); });
          });
        });
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
      loadCerts();
      loadApps();
    });
    setupCerts();

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
