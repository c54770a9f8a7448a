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

const pouchApp = expressPouchDB({
  mode: 'fullCouchDB',
  configPath: configPath,
  logPath: path.join(dataDir, 'log.txt'),
  overrideMode: {
    // 'validation' (validate_doc_update) is left out: pouchdb-validation replaces a written doc's
    // _revisions with the stored doc's, so replicated writes (new_edits=false) are silently dropped
    // whenever any validate_doc_update exists. The API enforces the same rules (api/write_rules.py);
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
