// staff-exchange.js: the data exchange registry page of the staff console.
// It lists members, subsystems (with their certificates), services, access
// rights and event types from the admin API (/api/v1/exchange/...), adds and
// removes them with the session and its CSRF token (which the staff
// console's frame puts in <meta name="csrf-token">), and shows the global
// configuration in force. Every text comes from the page (rendered from the
// catalogues) or from the API's problem titles, which are in the page's
// language. After an action focus goes to the section's status message (or
// to the form's error summary), so keyboard and screen-reader users hear
// what happened.
(function () {
  'use strict';

  var API = '/api/v1/exchange';
  var lang = document.documentElement.lang;
  var csrf = null;
  var PART = '[A-Za-z0-9_.-]{1,64}';

  function msg(name, vars) {
    var el = document.querySelector('[data-msg="' + name + '"]');
    var text = el ? el.textContent.trim() : '';
    Object.keys(vars || {}).forEach(function (k) { text = text.split('{' + k + '}').join(vars[k]); });
    return text;
  }

  // Resolves to { status, data } for any HTTP answer; a network failure
  // resolves to status 0 so callers handle one shape.
  function call(method, url, body) {
    var headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (csrf && method !== 'GET') headers['X-CSRF-Token'] = csrf;
    return fetch(url, {
      method: method, headers: headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (r) {
      if (r.status === 204) return { status: 204, data: null };
      return r.json().then(function (d) { return { status: r.status, data: d }; },
        function () { return { status: r.status, data: null }; });
    }, function () { return { status: 0, data: null }; });
  }

  function toLogin() {
    window.location.assign('/login.html?return=' + encodeURIComponent(window.location.pathname));
  }

  // Identifiers go into the URL one segment at a time: their slashes are
  // path segments of the admin API.
  function idPath(id) {
    return id.split('/').map(encodeURIComponent).join('/');
  }

  function when(iso) {
    var d = new Date(iso);
    if (!iso || isNaN(d)) return iso || '';
    try {
      return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(d);
    } catch (e) {
      return d.toISOString();
    }
  }

  function number(n) {
    try { return new Intl.NumberFormat(lang).format(n); } catch (e) { return String(n); }
  }

  // ---- errors tied to fields --------------------------------------------

  function clearErrors(form) {
    var summary = form.querySelector('[data-form-errors]');
    summary.hidden = true;
    summary.querySelector('ul').textContent = '';
    form.querySelectorAll('.field--error').forEach(function (f) {
      f.classList.remove('field--error');
      var err = f.querySelector('.field-error');
      var input = f.querySelector('input, select');
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

  // errors: [{ input: element or null, text }]. Fills the form's summary
  // (links to the fields), marks each field with its message (named by
  // aria-describedby) and moves focus to the summary.
  function showErrors(form, errors) {
    var summary = form.querySelector('[data-form-errors]');
    var list = summary.querySelector('ul');
    list.textContent = '';
    errors.forEach(function (e) {
      var li = document.createElement('li');
      if (e.input) {
        var a = document.createElement('a');
        a.href = '#' + e.input.id;
        a.textContent = e.text;
        a.addEventListener('click', function (ev) {
          ev.preventDefault();
          e.input.focus();
        });
        li.appendChild(a);
        var field = e.input.closest('.field');
        if (field && !field.classList.contains('field--error')) {
          field.classList.add('field--error');
          var p = document.createElement('p');
          p.className = 'field-error';
          p.id = e.input.id + '-error';
          var hidden = document.createElement('span');
          hidden.className = 'visually-hidden';
          hidden.textContent = msg('error-prefix');
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

  // What the page can tell before asking the server.
  function check(form) {
    var out = [];
    form.querySelectorAll('input').forEach(function (i) {
      var v = i.value.trim();
      if (!v) {
        if (i.required) out.push({ input: i, text: msg('required') });
        return;
      }
      var ok = true;
      if (i.dataset.idKind) {
        var n = Number(i.dataset.idKind);
        ok = new RegExp('^' + PART + '(/' + PART + '){' + (n - 1) + '}$').test(v);
      } else if (i.name === 'gateway') {
        ok = /^https:\/\/[^\/\s?#@]+$/.test(v);
      } else if (i.name === 'max_body') {
        ok = /^[0-9]{1,8}$/.test(v) && Number(v) >= 1 && Number(v) <= 16777216;
      } else if (i.name === 'methods') {
        ok = v === '*' || /^[A-Z]+(,[A-Z]+)*$/.test(v);
      } else if (i.name === 'paths') {
        ok = v === '*' || /^\/[^,\s]*(,\/[^,\s]*)*$/.test(v);
      }
      if (!ok) out.push({ input: i, text: msg(i.dataset.invalid) });
    });
    return out;
  }

  // A problem answer as one error, on the field it names when the form
  // has it (with the page's own wording for a malformed value).
  function problemError(res, form) {
    var d = res.data || {};
    if (res.status === 0) return { input: null, text: msg('network') };
    if (res.status === 403 && d.code === 'forbidden') return { input: null, text: msg('forbidden') };
    var input = d.field && form ? form.querySelector('[name="' + d.field + '"]') : null;
    var text = d.title || d.detail || msg('network');
    if (input && d.code === 'validation.invalid_field' && input.dataset.invalid) text = msg(input.dataset.invalid);
    return { input: input, text: text };
  }

  // ---- lists -------------------------------------------------------------

  var state = { certs: [], standing: {} };

  function cell(row, text) {
    var td = document.createElement('td');
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function certList(subsystem) {
    var mine = state.certs.filter(function (c) { return c.subsystem === subsystem; });
    if (!mine.length) return document.createTextNode(msg('cert-none'));
    var ul = document.createElement('ul');
    ul.className = 'cert-list';
    mine.forEach(function (c) {
      var li = document.createElement('li');
      var standing = state.standing[c.sha256] || 'good';
      li.appendChild(document.createTextNode(msg('usage-' + c.usage) + ' '));
      var serial = document.createElement('code');
      serial.className = 'serial';
      serial.textContent = c.serial;
      li.appendChild(serial);
      li.appendChild(document.createTextNode(' '));
      var tag = document.createElement('strong');
      tag.className = 'tag ' + (standing === 'good' ? 'tag--success' : 'tag--error');
      tag.textContent = msg('cert-' + standing);
      li.appendChild(tag);
      li.appendChild(document.createTextNode(' ' + msg('cert-until', { date: when(c.not_after) })));
      ul.appendChild(li);
    });
    return ul;
  }

  // How each list is shown: its columns, the name of a row, and the URL
  // that removes it.
  var KINDS = {
    members: {
      cols: function (it) { return [it.id, it.name]; },
      name: function (it) { return it.id; },
      del: function (it) { return API + '/members/' + idPath(it.id); },
    },
    subsystems: {
      cols: function (it) { return [it.id, it.gateway, certList(it.id)]; },
      name: function (it) { return it.id; },
      del: function (it) { return API + '/subsystems/' + idPath(it.id); },
    },
    services: {
      cols: function (it) {
        return [it.id, it.title || '', msg('log-' + it.log), msg('bytes', { n: number(it.max_body) })];
      },
      name: function (it) { return it.id; },
      del: function (it) { return API + '/services/' + idPath(it.id); },
    },
    access: {
      cols: function (it) { return [it.client, it.service, it.methods, it.paths]; },
      name: function (it) { return it.client + ' → ' + it.service; },
      del: function (it) { return API + '/access/' + idPath(it.client) + '/' + idPath(it.service); },
    },
    'event-types': {
      cols: function (it) { return [it.id, it.subsystem]; },
      name: function (it) { return it.id; },
      del: function (it) { return API + '/event-types/' + idPath(it.id); },
    },
  };

  function section(kind) {
    return document.querySelector('section[data-kind="' + kind + '"]');
  }

  // Says what happened in the section and moves focus there.
  function announce(kind, text) {
    var status = section(kind).querySelector('[data-status]');
    status.textContent = '';
    status.textContent = text;
    status.focus();
  }

  function render(kind, items) {
    var sec = section(kind);
    var k = KINDS[kind];
    var body = sec.querySelector('[data-rows]');
    // On a narrow screen each row becomes a card whose cells show their
    // column's name (CSS, from data-label).
    var heads = Array.prototype.map.call(sec.querySelectorAll('thead th'), function (th) {
      return th.textContent.trim();
    });
    body.textContent = '';
    items.forEach(function (it) {
      var row = document.createElement('tr');
      k.cols(it).forEach(function (v, i) {
        var td = typeof v === 'string' ? cell(row, v) : cell(row, '');
        if (typeof v !== 'string') td.appendChild(v);
        if (heads[i]) td.dataset.label = heads[i];
      });
      var btn = document.createElement('button');
      btn.type = 'button';
      btn.className = 'button button--secondary button--small';
      btn.textContent = msg('remove');
      // The visible text starts the name (WCAG 2.5.3); the id tells the rows apart.
      btn.setAttribute('aria-label', msg('remove') + ' ' + k.name(it));
      btn.dataset.remove = k.name(it);
      btn.addEventListener('click', function () { remove(kind, it, btn); });
      cell(row, '').appendChild(btn);
      row.dataset.id = k.name(it);
      body.appendChild(row);
    });
    sec.querySelector('[data-table]').hidden = items.length === 0;
    sec.querySelector('[data-empty]').hidden = items.length !== 0;
  }

  function renderConsole(c) {
    var role = c.role || 'standalone';
    document.querySelector('[data-conf="instance"]').textContent = c.instance;
    document.querySelector('[data-conf="role"]').textContent = msg('role-' + role) || role;
    document.querySelector('[data-conf="registry_version"]').textContent = number(c.registry_version);
    var conf = c.conf || {};
    document.querySelectorAll('[data-conf-published]').forEach(function (r) { r.hidden = !conf.published; });
    document.querySelector('[data-conf-missing]').hidden = !!conf.published;
    if (conf.published) {
      document.querySelector('[data-conf="version"]').textContent = number(conf.version);
      document.querySelector('[data-conf="generated_at"]').textContent = when(conf.generated_at);
      document.querySelector('[data-conf="expires_at"]').textContent = when(conf.expires_at);
    }
    state.standing = {};
    (c.certs || []).forEach(function (s) { state.standing[s.sha256] = s.status; });
  }

  function loadFailed(res) {
    if (res.status === 401) { toLogin(); return; }
    var box = document.querySelector('[data-load-error]');
    box.querySelector('p').textContent = problemError(res, null).text;
    box.hidden = false;
    document.querySelector('[data-loading]').hidden = true;
    box.focus();
  }

  // Reads everything again (a removal can take certificates and access
  // rights with it; every change moves the configuration's version).
  function load() {
    var urls = ['members', 'subsystems', 'services', 'access', 'event-types', 'certs', 'console'];
    return Promise.all(urls.map(function (u) { return call('GET', API + '/' + u); })).then(function (res) {
      var bad = res.filter(function (r) { return r.status !== 200; })[0];
      if (bad) { loadFailed(bad); return false; }
      state.certs = res[5].data.items;
      renderConsole(res[6].data);
      ['members', 'subsystems', 'services', 'access', 'event-types'].forEach(function (kind, i) {
        render(kind, res[i].data.items);
      });
      document.querySelector('[data-loading]').hidden = true;
      document.querySelector('[data-ready]').hidden = false;
      return true;
    });
  }

  function remove(kind, it, btn) {
    var form = section(kind).querySelector('form');
    clearErrors(form);
    btn.disabled = true;
    call('DELETE', KINDS[kind].del(it)).then(function (res) {
      if (res.status === 401) { toLogin(); return; }
      if (res.status !== 204) {
        btn.disabled = false;
        showErrors(form, [problemError(res, null)]);
        return;
      }
      load().then(function (ok) {
        if (ok) announce(kind, msg('removed', { id: KINDS[kind].name(it) }));
      });
    });
  }

  function bodyOf(form) {
    var out = {};
    form.querySelectorAll('input, select').forEach(function (i) {
      var v = i.value.trim();
      if (!v) return;
      out[i.name] = i.name === 'max_body' ? Number(v) : v;
    });
    return out;
  }

  function busy(form, on) {
    form.querySelectorAll('button').forEach(function (b) { b.disabled = on; });
    form.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  function bindForm(form) {
    var kind = form.dataset.form;
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      clearErrors(form);
      var errs = check(form);
      if (errs.length) { showErrors(form, errs); return; }
      var body = bodyOf(form);
      busy(form, true);
      call('POST', API + '/' + kind, body).then(function (res) {
        busy(form, false);
        if (res.status === 401) { toLogin(); return; }
        if (res.status !== 201 && res.status !== 200) {
          showErrors(form, [problemError(res, form)]);
          return;
        }
        var name = kind === 'access' ? KINDS.access.name(res.data) : res.data.id;
        form.reset();
        load().then(function (ok) {
          if (ok) announce(kind, msg('added', { id: name }));
        });
      });
    });
  }

  // The console's frame gives the session's CSRF token; the admin API
  // checks the session itself on every call (401 sends the person to log in).
  function init() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    csrf = meta ? meta.getAttribute('content') : null;
    document.querySelectorAll('form[data-form]').forEach(bindForm);
    load();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
