// csr.js: a PKCS#10 certificate signing request (RFC 2986) for a key pair
// made in this browser with WebCrypto (ECDSA P-256), so the private key is
// never sent anywhere. A small DER encoder builds CertificationRequestInfo
// (version 0, a minimal subject: the server builds the real one from the
// account, the SubjectPublicKeyInfo exported by the browser, no
// attributes), signs it with ECDSA SHA-256 and turns WebCrypto's raw r||s
// signature into the DER Ecdsa-Sig-Value that X.509 expects.
//
//   egovCsr.generate() -> Promise<{ keyPair, csrPem, keyPem }>
//   egovCsr.rawToDer(Uint8Array(64)) -> Uint8Array   (exposed for tests)
(function () {
  'use strict';

  // ---- DER ---------------------------------------------------------------
  function concat(parts) {
    var n = 0;
    parts.forEach(function (p) { n += p.length; });
    var out = new Uint8Array(n);
    var o = 0;
    parts.forEach(function (p) { out.set(p, o); o += p.length; });
    return out;
  }

  function length(n) {
    if (n < 0x80) return new Uint8Array([n]);
    var bytes = [];
    while (n > 0) { bytes.unshift(n & 0xff); n = Math.floor(n / 256); }
    return new Uint8Array([0x80 | bytes.length].concat(bytes));
  }

  function tlv(tag, content) {
    return concat([new Uint8Array([tag]), length(content.length), content]);
  }

  function seq() { return tlv(0x30, concat(Array.prototype.slice.call(arguments))); }
  function set() { return tlv(0x31, concat(Array.prototype.slice.call(arguments))); }

  // A non-negative INTEGER from big-endian bytes: minimal, with a 0x00
  // in front when the top bit is set (else it would read as negative).
  function uint(bytes) {
    var i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    var b = bytes.slice(i);
    if (b[0] & 0x80) b = concat([new Uint8Array([0]), b]);
    return tlv(0x02, b);
  }

  function oid(dotted) {
    var arcs = dotted.split('.').map(Number);
    var out = [40 * arcs[0] + arcs[1]];
    arcs.slice(2).forEach(function (a) {
      var stack = [a & 0x7f];
      a = Math.floor(a / 128);
      while (a > 0) { stack.unshift(0x80 | (a & 0x7f)); a = Math.floor(a / 128); }
      out = out.concat(stack);
    });
    return tlv(0x06, new Uint8Array(out));
  }

  function utf8(s) { return tlv(0x0c, new TextEncoder().encode(s)); }
  function bitString(bytes) { return tlv(0x03, concat([new Uint8Array([0]), bytes])); }

  var OID_CN = '2.5.4.3';
  var OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';

  // WebCrypto's ECDSA signature is r||s (32 bytes each for P-256).
  function rawToDer(raw) {
    var half = raw.length / 2;
    return seq(uint(raw.slice(0, half)), uint(raw.slice(half)));
  }

  function pem(label, der) {
    var bin = '';
    der.forEach(function (b) { bin += String.fromCharCode(b); });
    var b64 = btoa(bin).replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
    return '-----BEGIN ' + label + '-----\n' + b64 + '\n-----END ' + label + '-----\n';
  }

  function available() {
    return !!(window.crypto && window.crypto.subtle && window.isSecureContext);
  }

  function generate() {
    var subtle = window.crypto.subtle;
    var algo = { name: 'ECDSA', namedCurve: 'P-256' };
    var keyPair;
    var info;
    // Extractable: the person saves the private key next to the certificate.
    return subtle.generateKey(algo, true, ['sign', 'verify']).then(function (kp) {
      keyPair = kp;
      return subtle.exportKey('spki', kp.publicKey);
    }).then(function (spki) {
      info = seq(
        uint(new Uint8Array([0])),                               // version v1 (0)
        seq(set(seq(oid(OID_CN), utf8('egov')))),               // subject: replaced by the CA
        new Uint8Array(spki),                                   // SubjectPublicKeyInfo
        new Uint8Array([0xa0, 0x00])                            // attributes [0]: none
      );
      return subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keyPair.privateKey, info);
    }).then(function (sig) {
      var csr = seq(info, seq(oid(OID_ECDSA_SHA256)), bitString(rawToDer(new Uint8Array(sig))));
      return subtle.exportKey('pkcs8', keyPair.privateKey).then(function (p8) {
        return { keyPair: keyPair, csrPem: pem('CERTIFICATE REQUEST', csr), keyPem: pem('PRIVATE KEY', new Uint8Array(p8)) };
      });
    });
  }

  window.egovCsr = { generate: generate, available: available, rawToDer: rawToDer, pem: pem };
})();
