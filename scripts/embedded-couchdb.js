#!/usr/bin/env node
/*
 * Starts the embedded CouchDB-protocol server (express-pouchdb, the core of
 * pouchdb-server) for development and tests.
 *
 * Why a launcher of our own instead of the pouchdb-server CLI: it lets us drop
 * Fauxton, the open CORS layer and the test-only routes, keep config and logs
 * inside the data folder, and bind to loopback only. Only the Jamii API (as
 * admin) and the project's scripts are meant to talk to this server.
 *
 * Usage: node scripts/embedded-couchdb.js --dir DATA --port 5984 [--host 127.0.0.1]
 *        Admin credentials come from JAMII_COUCH_ADMIN_NAME / _PASSWORD.
 */
'use strict';

const path = require('path');
const fs = require('fs');

const serverPkg = require.resolve('pouchdb-server/package.json');
// Resolve pouchdb-server's own dependencies from its folder, so hoisting does not matter.
const need = (name) => require(require.resolve(name, { paths: [path.dirname(serverPkg), __dirname] }));

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 5984, dir: null };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in args)) {
      throw new Error('unknown option ' + argv[i]);
    }
    args[key] = argv[i + 1];
  }
  if (!args.dir) {
    throw new Error('--dir is required');
  }
  args.port = parseInt(args.port, 10);
  return args;
}

const args = parseArgs(process.argv.slice(2));
const dataDir = path.resolve(args.dir);
fs.mkdirSync(dataDir, { recursive: true });

const adminName = process.env.JAMII_COUCH_ADMIN_NAME;
const adminPassword = process.env.JAMII_COUCH_ADMIN_PASSWORD;
if (!adminName || !adminPassword) {
  throw new Error('JAMII_COUCH_ADMIN_NAME and JAMII_COUCH_ADMIN_PASSWORD must be set');
}

const express = need('express');
const expressPouchDB = need('express-pouchdb');
const PouchDB = need('pouchdb-core')
  .plugin(need('pouchdb-adapter-http'))
  .plugin(need('pouchdb-replication'))
  .plugin(need('pouchdb-mapreduce'))
  .plugin(need('pouchdb-adapter-leveldb'));

// The admin goes into the config file before the server reads it (it hashes
// plain passwords on start), so the server never runs in "admin party" and no
// two writers race on the file.
const configPath = path.join(dataDir, 'config.json');
let couchConfig = {};
if (fs.existsSync(configPath)) {
  couchConfig = JSON.parse(fs.readFileSync(configPath, 'utf8'));
}
couchConfig.admins = { [adminName]: adminPassword };
fs.writeFileSync(configPath, JSON.stringify(couchConfig, null, 2), { mode: 0o600 });

// CouchDB writes a document's keys in a fixed order: _id, _rev, the body as it was written, then
// _deleted, _revisions, the meta fields and _attachments. PouchDB puts _id and _rev last and keeps
// _attachments where the writer had it. Clients compare JSON.stringify(doc) (cht-conf decides
// whether to upload again that way), so every JSON answer of this server puts the documents it
// carries (a doc, open_revs, rows[].doc, results[].doc, results[].docs[].ok, docs[]) in CouchDB's order.
const TRAILING_KEYS = ['_deleted', '_revisions', '_revs_info', '_conflicts', '_deleted_conflicts', '_local_seq',
  '_attachments'];
function couchOrder(doc) {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc) || typeof doc._id !== 'string') {
    return doc;
  }
  const ordered = { _id: doc._id };
  if ('_rev' in doc) {
    ordered._rev = doc._rev;
  }
  Object.keys(doc).forEach((key) => {
    if (key !== '_id' && key !== '_rev' && TRAILING_KEYS.indexOf(key) === -1) {
      ordered[key] = doc[key];
    }
  });
  TRAILING_KEYS.forEach((key) => {
    if (key in doc) {
      ordered[key] = doc[key];
    }
  });
  return ordered;
}
function withCouchOrder(body) {
  if (!body || typeof body !== 'object') {
    return body;
  }
  if (Array.isArray(body)) { // open_revs
    return body.map((item) => (item && typeof item.ok === 'object' ? Object.assign({}, item, { ok: couchOrder(item.ok) }) : item));
  }
  if (typeof body._id === 'string') {
    return couchOrder(body);
  }
  const out = Object.assign({}, body);
  if (typeof body.doc === 'object') { // a continuous _changes line
    out.doc = couchOrder(body.doc);
  }
  ['rows', 'results'].forEach((list) => {
    if (Array.isArray(body[list])) {
      out[list] = body[list].map((row) => {
        if (!row || typeof row !== 'object') {
          return row;
        }
        const copy = Object.assign({}, row);
        if (typeof row.doc === 'object') {
          copy.doc = couchOrder(row.doc);
        }
        if (Array.isArray(row.docs)) { // _bulk_get
          copy.docs = row.docs.map((d) => (d && typeof d.ok === 'object' ? Object.assign({}, d, { ok: couchOrder(d.ok) }) : d));
        }
        return copy;
      });
    }
  });
  if (Array.isArray(body.docs)) { // _find
    out.docs = body.docs.map(couchOrder);
  }
  return out;
}
const pouchUtils = need('express-pouchdb/lib/utils');
['sendJSON', 'writeJSON'].forEach((name) => {
  const original = pouchUtils[name];
  pouchUtils[name] = function () {
    const args = Array.prototype.slice.call(arguments);
    args[args.length - 1] = withCouchOrder(args[args.length - 1]);
    return original.apply(this, args);
  };
});

// Show, list and update functions get the request as CouchDB gives it to them: without the
// Authorization header. pouchdb-server passed it on, so a design function could echo the credentials
// it was called with (the API's admin credentials) back to whoever called it.
const toCouchReq = pouchUtils.expressReqToCouchDBReq;
pouchUtils.expressReqToCouchDBReq = function (req) {
  const couchReq = toCouchReq(req);
  const headers = {};
  Object.keys(couchReq.headers || {}).forEach((name) => {
    if (name.toLowerCase() !== 'authorization') {
      headers[name] = couchReq.headers[name];
    }
  });
  couchReq.headers = headers;
  return couchReq;
};

const pouchApp = expressPouchDB({
  mode: 'fullCouchDB',
  configPath: configPath,
  logPath: path.join(dataDir, 'log.txt'),
  overrideMode: {
    // 'validation' (validate_doc_update) is left out: pouchdb-validation replaces a written doc's
    // _revisions with the stored doc's, so replicated writes (new_edits=false) are silently dropped
    // whenever any validate_doc_update exists. The API enforces the same rules (api/cht/replication/write_rules.py);
    // Apache CouchDB enforces the ddoc's too. _users keeps its own validation (pouchdb-auth).
    exclude: ['routes/fauxton', 'routes/special-test-auth', 'routes/vhosts', 'validation'],
  },
});
pouchApp.setPouchDB(PouchDB.defaults({ prefix: dataDir + path.sep }));

const app = express();
app.disable('x-powered-by');
app.use(pouchApp);
const server = app.listen(args.port, args.host, () => {
  console.log('embedded CouchDB listening on http://' + args.host + ':' + args.port + '/');
});
server.keepAliveTimeout = 65000;
server.on('error', (e) => {
  console.error('embedded CouchDB failed to listen: ' + e.message);
  process.exit(1);
});

const stop = () => process.exit(0);
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
