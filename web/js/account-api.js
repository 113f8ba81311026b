// account-api.js: what the account pages share: calls to the identity JSON
// API (same origin, cookie session, CSRF header), the error summary linked
// to fields, steps that replace each other, and the same-origin check for
// ?return=. Every text comes from the page (rendered from the catalogues)
// or from the API's problem titles, which are in the page's language.
(function () {
  'use strict';

  var API = '/api/v1/identity';
  var csrf = null;

  function setCsrf(token) { csrf = token || null; }

  // Resolves to { status, data } for any HTTP answer; network failures
  // resolve to status 0 so callers handle one shape.
  function api(method, path, body) {
    var headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (csrf && method !== 'GET') headers['X-CSRF-Token'] = csrf;
    return fetch(API + path, {
      method: method,
      headers: headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (r) {
      // Read even an empty body to its end: a caller that navigates away
      // next must not abort a request the browser has not finished.
      if (r.status === 204 || r.status === 202) {
        return r.text().then(function () { return { status: r.status, data: null }; },
          function () { return { status: r.status, data: null }; });
      }
      return r.json().then(function (d) { return { status: r.status, data: d }; },
        function () { return { status: r.status, data: null }; });
    }, function () { return { status: 0, data: null }; });
  }

  // For answers that are not JSON (a PKCS#12 download): the fetch
  // Response itself, or null on a network failure.
  function apiRaw(method, path, body) {
    var headers = { 'Content-Type': 'application/json' };
    if (csrf) headers['X-CSRF-Token'] = csrf;
    return fetch(API + path, {
      method: method, headers: headers, credentials: 'same-origin', body: JSON.stringify(body),
    }).then(function (r) { return r; }, function () { return null; });
  }

  function msg(name) {
    var el = document.querySelector('[data-msg="' + name + '"]');
    return el ? el.textContent.trim() : '';
  }

  // Only a path on this site: "/x...", never "//host", "/\host" or a scheme.
  function safeReturn(value, fallback) {
    if (typeof value === 'string' && /^\/(?![\/\\])[^\s]*$/.test(value) && value.indexOf('\\') < 0) return value;
    return fallback;
  }

  function query(name) {
    return new URLSearchParams(window.location.search).get(name);
  }

  function clearErrors(scope) {
    var summary = document.querySelector('[data-api-errors]');
    if (summary) {
      summary.hidden = true;
      summary.querySelector('ul').textContent = '';
    }
    (scope || document).querySelectorAll('.field--error').forEach(function (f) {
      f.classList.remove('field--error');
      var input = f.querySelector('input');
      var err = f.querySelector('.field-error');
      if (err) err.remove();
      if (input) {
        input.removeAttribute('aria-invalid');
        var ids = (input.getAttribute('aria-describedby') || '').split(' ').filter(function (id) {
          return id && id !== input.id + '-error';
        });
        if (ids.length) input.setAttribute('aria-describedby', ids.join(' '));
        else input.removeAttribute('aria-describedby');
      }
    });
  }

  // errors: [{ input: element or null, text }]. Fills the summary, marks
  // the fields, and moves focus to the summary.
  function showErrors(errors) {
    var summary = document.querySelector('[data-api-errors]');
    var list = summary.querySelector('ul');
    var prefix = (document.querySelector('[data-error-prefix]') || {}).textContent || '';
    list.textContent = '';
    errors.forEach(function (e) {
      var li = document.createElement('li');
      if (e.input) {
        var a = document.createElement('a');
        a.href = '#' + e.input.id;
        a.textContent = e.text;
        li.appendChild(a);
        var field = e.input.closest('.field');
        if (field && !field.classList.contains('field--error')) {
          field.classList.add('field--error');
          var p = document.createElement('p');
          p.className = 'field-error';
          p.id = e.input.id + '-error';
          var hidden = document.createElement('span');
          hidden.className = 'visually-hidden';
          hidden.textContent = prefix.trim();
          p.appendChild(hidden);
          p.appendChild(document.createTextNode(' ' + e.text));
          field.insertBefore(p, e.input);
          e.input.setAttribute('aria-invalid', 'true');
          var ids = (e.input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
          ids.push(p.id);
          e.input.setAttribute('aria-describedby', ids.join(' '));
        }
      } else {
        li.textContent = e.text;
      }
      list.appendChild(li);
    });
    summary.hidden = false;
    summary.focus();
  }

  // Problem answer -> one error, on the field it names if the form has it.
  function problemError(res, form, fallbackInput) {
    var d = res.data || {};
    var text = res.status === 0 ? msg('network') : (d.title || d.detail || msg('network'));
    var input = null;
    if (d.field && form) input = form.querySelector('[name="' + d.field + '"]');
    return { input: input || fallbackInput || null, text: text };
  }

  // Required fields left empty, as errors.
  function missing(form) {
    var out = [];
    form.querySelectorAll('input[required]').forEach(function (i) {
      if (!i.value.trim()) out.push({ input: i, text: msg('required') });
    });
    return out;
  }

  function showStep(name) {
    document.querySelectorAll('[data-step]').forEach(function (s) { s.hidden = s.dataset.step !== name; });
    var step = document.querySelector('[data-step="' + name + '"]');
    var heading = step && step.querySelector('h2[tabindex="-1"]');
    if (heading) heading.focus();
  }

  function busy(form, on) {
    form.querySelectorAll('button').forEach(function (b) { b.disabled = on; });
    form.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  window.egovAccount = {
    api: api, apiRaw: apiRaw, setCsrf: setCsrf, msg: msg, safeReturn: safeReturn, query: query,
    clearErrors: clearErrors, showErrors: showErrors, problemError: problemError,
    missing: missing, showStep: showStep, busy: busy,
  };
})();
